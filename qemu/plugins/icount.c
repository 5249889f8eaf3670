// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * icount: a QEMU TCG plugin that counts the guest instructions executed
 * between two marker instructions, at user and at kernel addresses
 * (`cargo xtask bench --instructions`, docs/benchmarks.md).
 *
 * Built by xtask (xtask/src/vm/icount.rs) with gcc against the
 * qemu-plugin.h of the QEMU version installed, taken from Debian's qemu
 * source package: the header is in no binary package, and a plugin is
 * loaded only if it was built for the API version that QEMU speaks.
 * The header needs only libc headers, so there is no glib here either.
 *
 * Markers (defined once in contract::icount, checked against this file by
 * an xtask unit test): `nopl disp32(%rax)`, bytes 0f 1f 80 + disp32, a
 * no-op in 64-bit and 32-bit code. QEMU 7.2 plugins cannot read guest
 * registers, so the instruction itself says what it marks: the high half
 * of the displacement is MAGIC, bit 15 is set for the closing marker, the
 * low 15 bits are the operation's id. Markers are recognised once, at
 * translation, and get an execution callback.
 *
 * Counting: every instruction gets an inline add of 1 to one of two
 * counters, chosen at translation by its address: the upper (canonical
 * high) half is the kernel's, the lower half the user's; 32-bit code runs
 * at linear addresses below 4 GiB, so it counts as user. Per instruction
 * rather than per translation block so that a block left early (a page
 * fault, an interrupt) counts only what it executed. QEMU 7.2's inline
 * counters are one memory word shared by all vCPUs, not per vCPU: the
 * guest runs with -smp 1 (xtask's MACHINE_ARGS), so the counts are exact
 * and one window is never interleaved with another vCPU's instructions.
 * Every process counts: a window around fork+exit+wait includes the
 * child's instructions too, which is the cost of the operation.
 *
 * Output (argument out=FILE), one line per event:
 *   sample <op> <user> <kernel>   a window closed
 *   unopened <op>                 a closing marker without its opening one
 *   unclosed <op>                 an opening marker while <op> was open
 *   end <user> <kernel>           QEMU exits (totals of the whole run)
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MARKER_MAGIC 0x1c570000u
#define MARKER_STOP 0x8000u
#define MARKER_OP_MASK 0x7fffu
#define MARKER_SIZE 7

static uint64_t user_insns;
static uint64_t kernel_insns;

/* The open window: its operation (0: none) and the counters at its start. */
static uint32_t open_op;
static uint64_t start_user;
static uint64_t start_kernel;

static FILE *out;

static void on_marker(unsigned int vcpu_index, void *udata)
{
	uint32_t disp = (uint32_t)(uintptr_t)udata;
	uint32_t op = disp & MARKER_OP_MASK;

	(void)vcpu_index;
	if (!(disp & MARKER_STOP)) {
		if (open_op)
			fprintf(out, "unclosed %" PRIu32 "\n", open_op);
		open_op = op;
		start_user = user_insns;
		start_kernel = kernel_insns;
		return;
	}
	if (open_op != op) {
		fprintf(out, "unopened %" PRIu32 "\n", op);
	} else {
		fprintf(out, "sample %" PRIu32 " %" PRIu64 " %" PRIu64 "\n", op,
			user_insns - start_user, kernel_insns - start_kernel);
	}
	open_op = 0;
}

/* The marker's displacement, or 0 if `insn` is no marker. */
static uint32_t marker(const struct qemu_plugin_insn *insn)
{
	const uint8_t *b = qemu_plugin_insn_data(insn);
	uint32_t disp;

	if (qemu_plugin_insn_size(insn) != MARKER_SIZE || b[0] != 0x0f ||
	    b[1] != 0x1f || b[2] != 0x80)
		return 0;
	memcpy(&disp, b + 3, sizeof(disp)); /* x86 is little-endian, as the host */
	return (disp & ~(MARKER_STOP | MARKER_OP_MASK)) == MARKER_MAGIC ? disp : 0;
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	size_t n = qemu_plugin_tb_n_insns(tb);

	(void)id;
	for (size_t i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		int kernel = qemu_plugin_insn_vaddr(insn) >> 63;
		uint32_t disp = marker(insn);

		qemu_plugin_register_vcpu_insn_exec_inline(
			insn, QEMU_PLUGIN_INLINE_ADD_U64,
			kernel ? &kernel_insns : &user_insns, 1);
		if (disp)
			qemu_plugin_register_vcpu_insn_exec_cb(
				insn, on_marker, QEMU_PLUGIN_CB_NO_REGS,
				(void *)(uintptr_t)disp);
	}
}

static void at_qemu_exit(qemu_plugin_id_t id, void *p)
{
	(void)id;
	(void)p;
	fprintf(out, "end %" PRIu64 " %" PRIu64 "\n", user_insns, kernel_insns);
	fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id,
					   const qemu_info_t *info, int argc,
					   char **argv)
{
	const char *path = NULL;

	if (!info->system_emulation || strcmp(info->target_name, "x86_64")) {
		fprintf(stderr, "icount: needs qemu-system-x86_64, not %s%s\n",
			info->system_emulation ? "" : "user-mode ",
			info->target_name);
		return -1;
	}
	for (int i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "out=", 4))
			path = argv[i] + 4;
	}
	if (!path) {
		fprintf(stderr, "icount: usage: -plugin icount.so,out=FILE\n");
		return -1;
	}
	out = fopen(path, "w");
	if (!out) {
		perror(path);
		return -1;
	}
	/* Line-buffered: a guest that crashes QEMU still leaves its samples. */
	setvbuf(out, NULL, _IOLBF, 0);
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
	qemu_plugin_register_atexit_cb(id, at_qemu_exit, NULL);
	return 0;
}
