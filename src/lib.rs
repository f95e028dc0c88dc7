//! dmb — build Linux kernel modules for the kernel inside a container VM,
//! check that they will load, package them as images, and load them.
//!
//! The library is split the way data flows (`docs/architecture.md`):
//! [`detect`] finds the running kernel, [`kernel`] knows kernels, their
//! Kconfig and kbuild files and the LinuxKit kernel-image layout, [`toolchain`] the compilers and builder
//! images, [`module_build`] plans and runs the container build (of a
//! module directory, or in-tree from the kernel's own source), [`ko`]
//! reads built modules, [`module_files`] finds the modules a command is
//! given, [`check`] says whether they will load, [`load`] loads and unloads
//! them. [`engine`] is the only place that talks to Docker, [`scripts`]
//! holds every script that runs in a container, [`error`] the one error at
//! the edge, and [`cli`] is the command line.

pub mod cache;
pub mod check;
pub mod cli;
pub mod detect;
pub mod dkms;
pub mod doctor;
pub mod download;
pub mod engine;
pub mod error;
pub mod interrupt;
pub mod kernel;
pub mod kmm;
pub mod ko;
pub mod load;
pub mod module_build;
pub mod module_files;
pub mod platform;
pub mod progress;
pub mod scripts;
pub mod synth;
pub mod tarball;
pub mod toolchain;

pub use error::Error;
