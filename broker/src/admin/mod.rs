//! Delegated administration: the policy that decides every admin action, the memberships it
//! governs, and the grants below top admin.

pub mod grants;
pub mod memberships;
pub mod policy;
#[cfg(test)]
mod policy_props;
