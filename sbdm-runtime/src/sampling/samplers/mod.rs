//! The sampling algorithms, one file each.

pub(crate) mod ancestral;
pub(crate) mod ddim;
pub(crate) mod ddpm;
pub(crate) mod dpm_solver;
pub(crate) mod dpmpp;
pub(crate) mod em;
pub(crate) mod heun;
pub(crate) mod langevin;
pub(crate) mod ode_euler;
pub(crate) mod reverse_diffusion;
pub(crate) mod rk45;
