// mimalloc instead of glibc's malloc: the sign-in path allocates many small, short-lived
// buffers across threads, where glibc spent about a tenth of the hub's CPU (bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fedhub::cli::main()
}
