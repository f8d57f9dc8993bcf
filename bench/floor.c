// The floor of `run --rm --network none IMAGE true` on this host: the
// kernel work docker's isolation of that container takes, done by one
// process in a straight line, with nothing an engine adds (no image store,
// no record of the container, no log, no monitor that outlives the call,
// no API). bench/containers.py times it beside berth, podman and docker:
// what no engine giving the same isolation can go under without doing the
// work before it is asked for.
//
//   floor LOWER INIT SECCOMP DIR
//
// LOWER is the image's root (a directory), INIT a layer with the mount
// points the image lacks (as the engines' init layers), SECCOMP a file of
// raw BPF instructions (docker's default profile as berth compiles it),
// DIR a new directory for the container's own files, removed (with the
// cgroups) by a child once the container's code is our exit code.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CG 16

static void die(const char *what) {
  fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
  exit(125);
}

static void put(const char *path, const char *value) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, value, strlen(value)) < 0) die(path);
  close(fd);
}

static void put_file(const char *dir, const char *name, const char *text) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, text, strlen(text)) < 0) die(p);
  close(fd);
}

// Every cgroup hierarchy mounted on the host (v1 ones and cgroup2), as
// runc joins them all; `cpuset` and `devices` say which v1 one is which.
static int hierarchies(char mp[][256], int *cpuset, int *devices, int *v1) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) die("/proc/self/mountinfo");
  char line[4096];
  int n = 0;
  *cpuset = *devices = -1;
  *v1 = 0;
  while (fgets(line, sizeof line, f) && n < MAX_CG) {
    char root[256], point[256], fstype[64], super[1024];
    char *sep = strstr(line, " - ");
    if (!sep || sscanf(line, "%*s %*s %*s %255s %255s", root, point) != 2 ||
        sscanf(sep + 3, "%63s %*s %1023s", fstype, super) != 2 || strcmp(root, "/"))
      continue;
    if (!strcmp(fstype, "cgroup")) {
      if (strstr(super, "cpuset")) *cpuset = n;
      if (strstr(super, "devices")) *devices = n;
      *v1 = 1;
    } else if (strcmp(fstype, "cgroup2")) {
      continue;
    }
    snprintf(mp[n++], 256, "%s", point);
  }
  fclose(f);
  return n;
}

static void copy_cpuset(const char *mp, const char *cg, const char *file) {
  char p[512], v[256];
  snprintf(p, sizeof p, "%s/%s", mp, file);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read(fd, v, sizeof v - 1);
  if (n < 0) die(p);
  close(fd);
  v[n] = 0;
  snprintf(p, sizeof p, "%s/%s", cg, file);
  put(p, v);
}

static int remove_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  return flag == FTW_DP ? rmdir(p) : unlink(p);
}

// docker's default capabilities (CHOWN, DAC_OVERRIDE, FOWNER, FSETID,
// KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT,
// MKNOD, AUDIT_WRITE, SETFCAP).
static const unsigned long CAPS = (1UL << 0) | (1UL << 1) | (1UL << 3) | (1UL << 4) | (1UL << 5) | (1UL << 6) |
                                  (1UL << 7) | (1UL << 8) | (1UL << 10) | (1UL << 13) | (1UL << 18) |
                                  (1UL << 27) | (1UL << 29) | (1UL << 31);

static void child(const char *merged, const char *dir, char mp[][256], char cg[][512], int ncg, int v1,
                  struct sock_fprog *filter, int go) {
  char c;
  // On cgroup2, docker's container has a cgroup namespace of its own,
  // rooted at its cgroup: made once the parent has moved us there.
  if (!v1 && (read(go, &c, 1) != 0 || unshare(CLONE_NEWCGROUP))) die("cgroup namespace");
  // `--network none` still has its loopback up.
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr = {0};
  strcpy(ifr.ifr_name, "lo");
  if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr)) die("lo");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr)) die("lo up");
  close(s);

  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) die("making / private");
  if (chdir(merged)) die(merged);
  if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) die("proc");
  if (mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")) die("dev");
  static const struct { const char *path; int major, minor; } devs[] = {
      {"dev/null", 1, 3}, {"dev/zero", 1, 5}, {"dev/full", 1, 7},
      {"dev/random", 1, 8}, {"dev/urandom", 1, 9}, {"dev/tty", 5, 0}};
  for (size_t i = 0; i < sizeof devs / sizeof *devs; i++)
    if (mknod(devs[i].path, S_IFCHR | 0666, makedev(devs[i].major, devs[i].minor))) die(devs[i].path);
  static const char *links[][2] = {{"/proc/self/fd", "dev/fd"}, {"/proc/self/fd/0", "dev/stdin"},
                                   {"/proc/self/fd/1", "dev/stdout"}, {"/proc/self/fd/2", "dev/stderr"},
                                   {"pts/ptmx", "dev/ptmx"}};
  for (size_t i = 0; i < sizeof links / sizeof *links; i++)
    if (symlink(links[i][0], links[i][1])) die(links[i][1]);
  if (mkdir("dev/pts", 0755) || mkdir("dev/shm", 01777) || mkdir("dev/mqueue", 0755)) die("dev dirs");
  if (mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"))
    die("devpts");
  if (mount("shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")) die("shm");
  if (mount("mqueue", "dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) die("mqueue");
  if (mount("sysfs", "sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL)) die("sysfs");
  // /sys/fs/cgroup: with the host's cgroup namespace (docker's default on
  // v1), runc binds each hierarchy's cgroup of the container, read-only.
  if (v1) {
    if (mount("tmpfs", "sys/fs/cgroup", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")) die("cgroup tmpfs");
    for (int i = 0; i < ncg; i++) {
      char t[512];
      snprintf(t, sizeof t, "sys/fs/cgroup/%s", strrchr(mp[i], '/') + 1);
      if (mkdir(t, 0755) || mount(cg[i], t, NULL, MS_BIND, NULL) ||
          mount(NULL, t, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
        die(t);
    }
    if (mount(NULL, "sys/fs/cgroup", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
      die("cgroup tmpfs read-only");
  } else if (mount("cgroup2", "sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL)) {
    die("cgroup2");
  }
  static const char *files[] = {"hosts", "hostname", "resolv.conf"};
  for (size_t i = 0; i < 3; i++) {
    char src[4096], dst[64];
    snprintf(src, sizeof src, "%s/%s", dir, files[i]);
    snprintf(dst, sizeof dst, "etc/%s", files[i]);
    if (mount(src, dst, NULL, MS_BIND, NULL)) die(dst);
  }
  // docker's masked and read-only paths.
  static const char *masked[] = {"proc/asound", "proc/acpi", "proc/kcore", "proc/keys", "proc/latency_stats",
                                 "proc/timer_list", "proc/timer_stats", "proc/sched_debug", "proc/scsi",
                                 "sys/firmware", "sys/devices/virtual/powercap"};
  for (size_t i = 0; i < sizeof masked / sizeof *masked; i++) {
    struct stat st;
    if (stat(masked[i], &st)) continue;
    if (S_ISDIR(st.st_mode) ? mount("tmpfs", masked[i], "tmpfs", MS_RDONLY, NULL)
                            : mount("/dev/null", masked[i], NULL, MS_BIND, NULL))
      die(masked[i]);
  }
  static const char *ro[] = {"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"};
  for (size_t i = 0; i < sizeof ro / sizeof *ro; i++) {
    if (access(ro[i], F_OK)) continue;
    if (mount(ro[i], ro[i], NULL, MS_BIND | MS_REC, NULL) ||
        mount(NULL, ro[i], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, NULL))
      die(ro[i]);
  }
  if (sethostname("floor", 5)) die("hostname");
  if (syscall(SYS_pivot_root, ".", ".")) die("pivot_root");
  if (umount2(".", MNT_DETACH) || chdir("/")) die("the old root");
  if (v1 && read(go, &c, 1) != 0) die("waiting to be in the cgroups");
  // The filter goes on while SYS_ADMIN is still held, as runc does
  // without no_new_privileges; then the capabilities are dropped.
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, filter)) die("seccomp");
  for (int cap = 0; cap <= 63; cap++)
    if (!(CAPS & (1UL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EINVAL) die("bounding set");
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2] = {{(unsigned)CAPS, (unsigned)CAPS, 0}, {0, 0, 0}};
  if (syscall(SYS_capset, &h, d)) die("capset");
  char *argv[] = {"true", NULL};
  char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=floor", NULL};
  execve("/bin/true", argv, envp);
  die("exec /bin/true");
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: floor LOWER INIT SECCOMP DIR\n");
    return 125;
  }
  const char *lower = argv[1], *init = argv[2], *dir = argv[4];
  static struct sock_filter insns[4096];
  int sf = open(argv[3], O_RDONLY | O_CLOEXEC);
  ssize_t len = sf < 0 ? -1 : read(sf, insns, sizeof insns);
  if (len <= 0 || len % sizeof *insns) die(argv[3]);
  close(sf);
  struct sock_fprog filter = {(unsigned short)(len / sizeof *insns), insns};

  char upper[4096], work[4096], merged[4096], opts[16384];
  snprintf(upper, sizeof upper, "%s/upper", dir);
  snprintf(work, sizeof work, "%s/work", dir);
  snprintf(merged, sizeof merged, "%s/merged", dir);
  if (mkdir(dir, 0700) || mkdir(upper, 0755) || mkdir(work, 0700) || mkdir(merged, 0755)) die(dir);
  put_file(dir, "hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  put_file(dir, "hostname", "floor\n");
  put_file(dir, "resolv.conf", "nameserver 127.0.0.1\n");
  snprintf(opts, sizeof opts, "lowerdir=%s:%s,upperdir=%s,workdir=%s,volatile", init, lower, upper, work);
  if (mount("overlay", merged, "overlay", 0, opts)) die("overlay");

  char mp[MAX_CG][256], cg[MAX_CG][512];
  int cpuset, devices, v1;
  int ncg = hierarchies(mp, &cpuset, &devices, &v1);
  for (int i = 0; i < ncg; i++) {
    snprintf(cg[i], sizeof cg[i], "%s/floor-%d", mp[i], getpid());
    if (mkdir(cg[i], 0755)) die(cg[i]);
    if (i == cpuset) {
      copy_cpuset(mp[i], cg[i], "cpuset.cpus");
      copy_cpuset(mp[i], cg[i], "cpuset.mems");
    }
  }
  if (devices >= 0) {
    // runc's default device rules: deny all, allow the standard devices.
    static const char *allow[] = {"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                                  "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
                                  "c 10:200 rwm"};
    char p[600];
    snprintf(p, sizeof p, "%s/devices.deny", cg[devices]);
    put(p, "a");
    snprintf(p, sizeof p, "%s/devices.allow", cg[devices]);
    for (size_t i = 0; i < sizeof allow / sizeof *allow; i++) put(p, allow[i]);
  }

  int go[2];
  if (pipe2(go, O_CLOEXEC)) die("pipe");
  int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
  pid_t pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (pid < 0) die("clone");
  if (pid == 0) {
    close(go[1]);
    child(merged, dir, mp, cg, ncg, v1, &filter, go[0]);
  }
  close(go[0]);
  char s[32];
  snprintf(s, sizeof s, "%d", pid);
  for (int i = 0; i < ncg; i++) {
    char p[600];
    snprintf(p, sizeof p, "%s/cgroup.procs", cg[i]);
    put(p, s);
  }
  close(go[1]);
  int status;
  if (waitpid(pid, &status, 0) != pid) die("waitpid");
  if (umount2(merged, MNT_DETACH)) die("unmounting the root");
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  // What nobody sees goes after the answer, as berth's monitor removes a
  // --rm container's cgroups and directories after it: a child does it,
  // away from our caller's pipes.
  pid_t later = fork();
  if (later < 0) die("fork");
  if (later > 0) return code;
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) _exit(125);
  for (int i = 0; i < ncg; i++)
    while (rmdir(cg[i]))  // busy until the kernel has let the dead init go
      if (errno != EBUSY || sched_yield()) _exit(125);
  _exit(nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) ? 125 : 0);
}
