//! dmb — build Linux kernel modules for the kernel inside a container VM.
//!
//! The library is split the way data flows: [`kernel`] knows the LinuxKit
//! kernel-image layout, [`toolchain`] knows how to complete a builder image,
//! [`build`] plans and renders the container build, [`ko`] reads built
//! modules, and [`engine`] is the only place that talks to Docker.
//! [`cli`] is the command-line edge.

pub mod build;
pub mod check;
pub mod cli;
pub mod engine;
pub mod interrupt;
pub mod kernel;
pub mod ko;
pub mod load;
pub mod target;
pub mod toolchain;
