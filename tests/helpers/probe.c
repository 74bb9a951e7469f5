/*
 * A static test probe, usable inside an empty chroot: each subcommand reports one fact about the
 * process it runs in, so tests can look from inside the child without a shell's own fds or forks.
 *   probe fds              one line per open fd: "N TARGET" (the probe's own directory fd excluded)
 *   probe cat FILE...      copy files to stdout
 *   probe pwd              getcwd(), or "getcwd: <strerror>" and exit 1
 *   probe mount-proc DIR   mount("none", DIR, "proc"), as Go's TestUnshareMountNameSpace helper
 *   probe chroot DIR       chroot(DIR), as Go's TestUnshareUidGidMapping helper
 * Exit status 2 means a failed system call; the message goes to stderr.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

static int fail(const char *what, const char *arg)
{
    fprintf(stderr, "%s %s: %s\n", what, arg, strerror(errno));
    return 2;
}

static int list_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return fail("opendir", "/proc/self/fd");
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd == dirfd(d))
            continue;
        char path[64], target[PATH_MAX];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n < 0 ? 0 : n] = '\0';
        printf("%d %s\n", fd, target);
    }
    closedir(d);
    return 0;
}

static int cat(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        int fd = open(argv[i], O_RDONLY);
        if (fd < 0)
            return fail("open", argv[i]);
        char buf[4096];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            fwrite(buf, 1, (size_t)n, stdout);
        close(fd);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 64;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "fds"))
        return list_fds();
    if (!strcmp(cmd, "cat"))
        return cat(argc - 2, argv + 2);
    if (!strcmp(cmd, "pwd")) {
        char buf[PATH_MAX];
        if (!getcwd(buf, sizeof buf)) {
            printf("getcwd: %s\n", strerror(errno));
            return 1;
        }
        puts(buf);
        return 0;
    }
    if (!strcmp(cmd, "mount-proc") && argc == 3)
        return mount("none", argv[2], "proc", 0, "") ? fail("mount", argv[2]) : 0;
    if (!strcmp(cmd, "chroot") && argc == 3)
        return chroot(argv[2]) ? fail("chroot", argv[2]) : 0;
    return 64;
}
