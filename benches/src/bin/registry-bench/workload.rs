//! One module per workload, each named as `--only` names it.

pub(crate) mod blob;
pub(crate) mod bounds;
pub(crate) mod docker;
pub(crate) mod list;
pub(crate) mod load;
pub(crate) mod mirror;
pub(crate) mod push32;
pub(crate) mod smallpush;
pub(crate) mod startup;
