/* Calls the syscalls named on the command line, each once, and prints
 * "name errno" (0: it succeeded). The arguments are chosen so that a call
 * which gets past seccomp and the capability checks still changes nothing
 * (bad pointers, bad flags, bad magic numbers): the battery can run on a
 * host whose berth had no filter at all and only see the wrong errno.
 * Built static by the test with the host's cc; busybox has no keyctl,
 * raw-socket or module-loading applet that reports errno. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/timex.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <fcntl.h>
#include <dirent.h>

static long call(const char *n, const char *arg) {
#define IS(s) (strcmp(n, s) == 0)
    struct timex tx;
    if (IS("keyctl")) /* KEYCTL_GET_KEYRING_ID of the session keyring */
        return syscall(SYS_keyctl, 0, -3, 0);
    if (IS("add_key")) return syscall(SYS_add_key, NULL, NULL, NULL, 0, -2);
    if (IS("request_key")) return syscall(SYS_request_key, NULL, NULL, NULL, 0);
    if (IS("unshare_user")) return syscall(SYS_unshare, CLONE_NEWUSER);
    if (IS("unshare_ns")) return syscall(SYS_unshare, CLONE_NEWNS);
    if (IS("clone_newuser")) {
        long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (r == 0) _exit(0);
        return r;
    }
    if (IS("setns")) return syscall(SYS_setns, -1, 0);
    if (IS("mount")) return syscall(SYS_mount, NULL, NULL, NULL, 0, NULL);
    if (IS("umount2")) return syscall(SYS_umount2, "/nonexistent", 0);
    if (IS("pivot_root")) return syscall(SYS_pivot_root, "/nonexistent", "/nonexistent");
    if (IS("swapon")) return syscall(SYS_swapon, NULL, 0);
    if (IS("swapoff")) return syscall(SYS_swapoff, NULL);
    /* Bad magic: EINVAL even with CAP_SYS_BOOT, never a reboot. */
    if (IS("reboot")) return syscall(SYS_reboot, 0, 0, 0, NULL);
    /* Unknown flag bits: EINVAL even with CAP_SYS_BOOT. */
    if (IS("kexec_load")) return syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL);
    if (IS("kexec_file_load")) return syscall(SYS_kexec_file_load, -1, -1, 0, NULL, 0xdead0000UL);
    if (IS("init_module")) return syscall(SYS_init_module, NULL, 0, NULL);
    if (IS("finit_module")) return syscall(SYS_finit_module, -1, "", 0);
    if (IS("delete_module")) return syscall(SYS_delete_module, "berth_no_such_module", O_NONBLOCK);
    if (IS("acct")) return syscall(SYS_acct, "/nonexistent");
    if (IS("bpf")) return syscall(SYS_bpf, -1, NULL, 0);
    if (IS("perf_event_open")) return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
    if (IS("open_by_handle_at")) return syscall(SYS_open_by_handle_at, -1, NULL, 0);
    if (IS("lookup_dcookie")) return syscall(SYS_lookup_dcookie, 0, NULL, 0);
    if (IS("quotactl")) return syscall(SYS_quotactl, 0, NULL, 0, NULL);
    if (IS("settimeofday")) return syscall(SYS_settimeofday, NULL, NULL);
    if (IS("clock_settime")) return syscall(SYS_clock_settime, 0, NULL);
    /* ADJ_TICK with tick 0: EPERM without CAP_SYS_TIME, EINVAL with it. */
    if (IS("clock_adjtime")) {
        memset(&tx, 0, sizeof tx);
        tx.modes = ADJ_TICK;
        return syscall(SYS_clock_adjtime, 0, &tx);
    }
    if (IS("iopl")) return syscall(SYS_iopl, 0);
    if (IS("ioperm")) return syscall(SYS_ioperm, 0, 0, 0);
    if (IS("kcmp")) return syscall(SYS_kcmp, -1, -1, 0, 0, 0);
    if (IS("get_mempolicy")) return syscall(SYS_get_mempolicy, NULL, NULL, 0, NULL, 0);
    if (IS("set_mempolicy")) return syscall(SYS_set_mempolicy, 0xdead, NULL, 0);
    if (IS("mbind")) return syscall(SYS_mbind, NULL, 0, 0xdead, NULL, 0, 0);
    if (IS("move_pages")) return syscall(SYS_move_pages, 0, 0, NULL, NULL, NULL, 0);
    if (IS("userfaultfd")) return syscall(SYS_userfaultfd, 0);
    if (IS("personality")) return syscall(SYS_personality, 0x0400000); /* ADDR_NO_RANDOMIZE */
    if (IS("syslog")) return syscall(SYS_syslog, 3, NULL, 0);
    if (IS("sethostname")) return syscall(SYS_sethostname, NULL, 0);
    /* Not in the kernel any more (ENOSYS without a filter). */
    if (IS("create_module")) return syscall(SYS_create_module, NULL, 0);
    if (IS("get_kernel_syms")) return syscall(SYS_get_kernel_syms, NULL);
    if (IS("query_module")) return syscall(SYS_query_module, NULL, 0, NULL, 0, NULL);
    if (IS("nfsservctl")) return syscall(SYS_nfsservctl, 0, NULL, NULL);
    if (IS("uselib")) return syscall(SYS_uselib, NULL);
    if (IS("ustat")) return syscall(SYS_ustat, 0, NULL);
    if (IS("sysfs")) return syscall(SYS_sysfs, 0xdead, 0, 0);
    if (IS("_sysctl")) return syscall(SYS__sysctl, NULL);
    /* Sockets: a raw ICMP socket, a packet socket, vsock. */
    if (IS("raw")) return socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (IS("packet")) return socket(AF_PACKET, SOCK_RAW, 0);
    if (IS("vsock")) return socket(40, SOCK_STREAM, 0);
    /* Another process by pid (ARG): signal 0 and ptrace attach. */
    if (IS("kill0")) return kill(atoi(arg), 0);
    if (IS("ptrace")) return syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, atoi(arg), 0, 0);
    fprintf(stderr, "probe: unknown call %s\n", n);
    exit(2);
}

/* "fds": this process's open descriptors, but for the one listing them. */
static void fds(void) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (!d) { perror("/proc/self/fd"); exit(2); }
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
            printf("%s ", e->d_name);
    printf("\n");
    closedir(d);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "fds") == 0) {
        fds();
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        char *name = argv[i], *arg = strchr(name, '=');
        if (arg) *arg++ = 0;
        errno = 0;
        long r = call(name, arg);
        printf("%s %d\n", name, r < 0 ? errno : 0);
    }
    return 0;
}
