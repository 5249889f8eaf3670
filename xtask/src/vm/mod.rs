//! The guest: the QEMU command line (`qemu`), which accelerator runs it
//! (`accel`), one boot with its console captured (`boot`), and what the
//! guest boots into (`initramfs`). Nothing here prints: the callers report
//! what these functions return.

pub mod accel;
pub mod boot;
pub mod console;
pub mod icount;
pub mod initramfs;
pub mod qemu;
