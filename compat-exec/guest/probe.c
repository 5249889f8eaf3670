/* An i386 probe: prints what an ia32 execve() should have set up. */
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
#include <time.h>
#include <signal.h>
#include <sys/syscall.h>

static volatile int got, got2;
static void on_usr1(int s) { got = s; }
static void on_usr2(int s) { got2 = s; }

/* The kernel's struct sigaction for ia32 rt_sigaction. */
struct kernel_sigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long long mask;
};

int main(int argc, char **argv, char **envp)
{
	char exe[256] = "";
	readlink("/proc/self/exe", exe, sizeof exe - 1);
	printf("argc=%d argv0=%s exe=%s\n", argc, argv[0], exe);
	printf("execfn=%s platform=%s pagesz=%lu clktck=%lu secure=%lu\n",
	       (char *)getauxval(AT_EXECFN), (char *)getauxval(AT_PLATFORM),
	       getauxval(AT_PAGESZ), getauxval(AT_CLKTCK), getauxval(AT_SECURE));
	printf("sysinfo=%s ehdr=%s phdr=%s entry=%s\n",
	       getauxval(AT_SYSINFO) ? "set" : "none", getauxval(AT_SYSINFO_EHDR) ? "set" : "none",
	       getauxval(AT_PHDR) ? "set" : "none", getauxval(AT_ENTRY) ? "set" : "none");
	unsigned char *r = (unsigned char *)getauxval(AT_RANDOM);
	printf("random=%s\n", r ? "16 bytes" : "none");
	signal(SIGUSR1, on_usr1);
	raise(SIGUSR1);
	printf("signal=%d\n", got);
	/* No SA_RESTORER: the handler returns through the 32-bit vDSO's
	 * __kernel_sigreturn, which glibc's sigaction() never uses. */
	struct kernel_sigaction ksa = { on_usr2, 0, 0, 0 };
	long rc = syscall(SYS_rt_sigaction, SIGUSR2, &ksa, 0, 8);
	raise(SIGUSR2);
	printf("vdso-restorer rt_sigaction=%ld signal=%d\n", rc, got2);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	printf("sp-aligned=%d\n", ((unsigned long)&ts & 3) == 0);
	return argc;
}
