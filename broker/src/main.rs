fn main() -> std::process::ExitCode {
    fedhub::cli::main()
}
