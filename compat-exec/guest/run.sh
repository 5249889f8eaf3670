#!/bin/sh
# Boots KERNEL (a vmlinux) under QEMU TCG with compat-exec, Debian's i386
# busybox and guest/init, and prints the console. Until the xtask and
# validator take this over: run from the workspace root.
#   compat-exec/guest/run.sh VMLINUX GEN_INIT_CPIO BUSYBOX_I386 [OUT_DIR]
# APPEND adds to the kernel command line (e.g. APPEND=vdso32=0). With
# gcc -m32 (gcc-multilib), guest/probe.c is added, static and static-PIE.
set -eu
kernel=$1 gen_init_cpio=$2 busybox_i386=$3 out=${4:-target/compat-exec-guest}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release \
	-p compat-exec --target x86_64-unknown-linux-gnu
ce=target/x86_64-unknown-linux-gnu/release/compat-exec
probes=
if gcc -m32 -static -O2 -o "$out/probe-static" "$here/probe.c" 2>/dev/null &&
	gcc -m32 -static-pie -fPIE -O2 -o "$out/probe-pie" "$here/probe.c"; then
	probes="file /bin/probe-static $out/probe-static 0755 0 0
file /bin/probe-pie $out/probe-pie 0755 0 0"
fi
cat >"$out/initramfs.list" <<LIST
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
dir /bin 0755 0 0
dir /proc 0755 0 0
dir /tmp 1777 0 0
file /init $here/init 0755 0 0
file /bin/busybox /bin/busybox 0755 0 0
slink /bin/sh busybox 0777 0 0
file /bin/busybox-i386 $busybox_i386 0755 0 0
file /bin/compat-exec $ce 0755 0 0
$probes
LIST
"$gen_init_cpio" -t 0 "$out/initramfs.list" >"$out/initramfs.cpio"
cpu=max
qemu-system-x86_64 --version | grep -qE 'version [0-8]\.' && cpu=max,-smap
timeout 600 qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
	-machine pc -m 256M -smp 1 -accel tcg -cpu "$cpu" \
	-kernel "$kernel" -initrd "$out/initramfs.cpio" \
	-append "console=ttyS0 panic=-1 oops=panic ${APPEND:-}" -serial stdio </dev/null
