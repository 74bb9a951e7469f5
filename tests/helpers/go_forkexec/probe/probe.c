/* probe: what a program started by fork_exec sees, as "key=value" lines, for the Go differential
 * (test_go_differential.py). argv[1..]: output paths to try (the second one for a chrooted probe), then
 * "ns=" the caller's namespace links "name:link,..." to compare with this process's, and "mnt=" a mount
 * point whose propagation tags it reports (as for "/"). Static: it runs
 * inside a chroot that holds only it and /proc. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <termios.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/syscall.h>

extern char **environ;

static void status_lines(FILE *out) {
    static const char *keys[] = {"Uid:", "Gid:", "Groups:", "SigBlk:", "SigIgn:", "CapInh:", "CapPrm:",
                                 "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", NULL};
    FILE *f = fopen("/proc/self/status", "r");
    char line[512];
    if (!f) { fprintf(out, "status=ERR%d\n", errno); return; }
    while (fgets(line, sizeof line, f))
        for (int i = 0; keys[i]; i++)
            if (!strncmp(line, keys[i], strlen(keys[i]))) fputs(line, out);
    fclose(f);
}

int main(int argc, char **argv) {
    FILE *out = NULL;
    const char *ns = "", *watched = "";
    int i;
    /* every fd before anything opens one */
    char fds[4096] = "";
    for (int fd = 0; fd < 64; fd++) {
        struct stat st;
        if (fstat(fd, &st) < 0) continue;
        char one[96];
        if (isatty(fd)) snprintf(one, sizeof one, "%d:tty ", fd);
        else if (S_ISFIFO(st.st_mode)) snprintf(one, sizeof one, "%d:pipe ", fd);
        else snprintf(one, sizeof one, "%d:%lu:%lu ", fd, (unsigned long)st.st_dev, (unsigned long)st.st_ino);
        strcat(fds, one);
    }
    for (i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "ns=", 3)) { ns = argv[i] + 3; continue; }
        if (!strncmp(argv[i], "mnt=", 4)) { watched = argv[i] + 4; continue; }
        if (!out) out = fopen(argv[i], "w");
    }
    if (!out) return 99;
    fprintf(out, "fds=%s\n", fds);
    uid_t r, e, s; getresuid(&r, &e, &s); fprintf(out, "resuid=%u,%u,%u\n", r, e, s);
    gid_t gr, ge, gs; getresgid(&gr, &ge, &gs); fprintf(out, "resgid=%u,%u,%u\n", gr, ge, gs);
    gid_t groups[64]; int ng = getgroups(64, groups);
    fprintf(out, "getgroups=");
    for (int k = 0; k < ng; k++) fprintf(out, "%u ", groups[k]);
    fprintf(out, "\n");
    status_lines(out);
    /* the same without /proc, for a chrooted probe */
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) == 0)
        fprintf(out, "capget=%x:%x %x:%x %x:%x\n", data[1].effective, data[0].effective, data[1].permitted,
                data[0].permitted, data[1].inheritable, data[0].inheritable);
    fprintf(out, "ambient=");
    for (int c = 0; c < 64; c++) if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1) fprintf(out, "%d ", c);
    fprintf(out, "\nno_new_privs=%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    sigset_t mask; sigprocmask(SIG_BLOCK, NULL, &mask);
    fprintf(out, "blocked=");
    for (int k = 1; k < 65; k++) if (sigismember(&mask, k) == 1) fprintf(out, "%d ", k);
    fprintf(out, "\nignored=");
    for (int k = 1; k < 65; k++) {
        struct sigaction sa;
        if (syscall(SYS_rt_sigaction, k, NULL, &sa, 8) == 0 && sa.sa_handler == SIG_IGN) fprintf(out, "%d ", k);
    }
    fprintf(out, "\n");
    pid_t me = getpid(), pp = getppid();
    fprintf(out, "pid1=%d ppid0=%d\n", me == 1, pp == 0);
    fprintf(out, "pgid_is_self=%d sid_is_self=%d\n", getpgid(0) == me, getsid(0) == me);
    /* the caller's pgid/sid: the harness passes nothing, compare with the parent's when visible */
    if (pp > 0) fprintf(out, "pgid_is_parents=%d sid_is_parents=%d\n", getpgid(0) == getpgid(pp), getsid(0) == getsid(pp));
    {
        FILE *f = fopen("/proc/self/stat", "r");
        char buf[1024];
        if (f && fgets(buf, sizeof buf, f)) {
            char *p = strrchr(buf, ')');
            int tty = 0, tpgid = 0, pgrp = 0, sess = 0; char st;
            sscanf(p + 2, "%c %*d %d %d %d %d", &st, &pgrp, &sess, &tty, &tpgid);
            fprintf(out, "has_ctty=%d tpgid_is_pgrp=%d\n", tty != 0, tty != 0 && tpgid == pgrp);
        }
        if (f) fclose(f);
    }
    for (int fd = 0; fd < 16; fd++) if (isatty(fd)) {
        pid_t sid = -1, pg = -1;
        int a = ioctl(fd, TIOCGSID, &sid), b = ioctl(fd, TIOCGPGRP, &pg);
        fprintf(out, "tty%d: sid_is_mine=%d pgrp_is_mine=%d\n", fd, a == 0 && sid == getsid(0), b == 0 && pg == getpgid(0));
    }
    char exe[4096]; ssize_t xn = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (xn >= 0) { exe[xn] = 0; fprintf(out, "exe=%s\n", exe); } else fprintf(out, "exe=ERR%d\n", errno);
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd)) fprintf(out, "cwd=%s\n", cwd); else fprintf(out, "cwd=ERR%d\n", errno);
    struct stat root; stat("/", &root); fprintf(out, "root=%lu:%lu\n", (unsigned long)root.st_dev, (unsigned long)root.st_ino);
    int sig = -1; prctl(PR_GET_PDEATHSIG, &sig); fprintf(out, "pdeathsig=%d\n", sig);
    fprintf(out, "keepcaps=%d\n", prctl(PR_GET_KEEPCAPS));
    fprintf(out, "dumpable=%d\n", prctl(PR_GET_DUMPABLE));
    struct utsname u; uname(&u); fprintf(out, "hostname=%s\n", u.nodename);
    struct rlimit rl; getrlimit(RLIMIT_NOFILE, &rl); fprintf(out, "nofile=%lu\n", (unsigned long)rl.rlim_cur);
    mode_t um = umask(0); fprintf(out, "umask=%o\n", um);
    for (char **e2 = environ; *e2; e2++) fprintf(out, "env=%s\n", *e2);
    for (i = 0; i < argc; i++) if (strncmp(argv[i], "ns=", 3) && strncmp(argv[i], "mnt=", 4)) fprintf(out, "argv=%s\n", argv[i]);
    static const char *names[] = {"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time",
                                  "time_for_children", "user", "uts", NULL};
    for (i = 0; names[i]; i++) {
        char path[64], link[128] = "";
        snprintf(path, sizeof path, "/proc/self/ns/%s", names[i]);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n < 0) { fprintf(out, "ns_%s=ERR%d\n", names[i], errno); continue; }
        link[n] = 0;
        char want[160]; snprintf(want, sizeof want, "%s:%s", names[i], link);
        const char *hit = strstr(ns, want);
        fprintf(out, "ns_%s=%s\n", names[i], hit ? "caller" : "new");
    }
    {
        FILE *f = fopen("/proc/self/cgroup", "r"); char buf[512];
        while (f && fgets(buf, sizeof buf, f)) if (!strncmp(buf, "0::", 3)) fprintf(out, "cgroup=%s", buf + 3);
        if (f) fclose(f);
    }
    {
        FILE *f = fopen("/proc/self/mountinfo", "r"); char buf[1024];
        while (f && fgets(buf, sizeof buf, f)) {
            int id, pid; unsigned ma, mi; char rootp[256], mp[256], opts[256];
            if (sscanf(buf, "%d %d %u:%u %255s %255s %255s", &id, &pid, &ma, &mi, rootp, mp, opts) == 7 && (!strcmp(mp, "/") || !strcmp(mp, watched))) {
                char *dash = strstr(buf, " - "); *dash = 0;
                char *tags = buf;
                for (int k = 0; k < 6 && tags; k++) { tags = strchr(tags, ' '); if (tags) tags++; }
                fprintf(out, "%s_tags=%s\n", strcmp(mp, "/") ? "watched" : "root", tags ? tags : "");
            }
        }
        if (f) fclose(f);
    }
    fclose(out);
    return 0;
}
