//! What people look at: sample metrics, PNG plots and image grids.

pub mod imgrid;
pub mod metrics;
pub mod plot;
