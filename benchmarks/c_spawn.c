/*
 * c_spawn: the C reference loop of benchmarks/spawn.py — clone + execve + waitpid, timed per spawn.
 *
 *   c_spawn [-n N] [-f FLAGS] [-m BYTES] [-F] -- PROG [ARGS...]   one-shot: prints the median ns/spawn
 *   c_spawn -s [-m BYTES]                                          serve: see below
 *
 * FLAGS are clone flags (0x... accepted). With CLONE_NEWUSER the parent writes the child's maps
 * (uid 0 -> our uid, "deny" to setgroups, gid 0 -> our gid) while the child waits on a pipe, as Go and
 * pyforkexec do. -m holds BYTES of touched anonymous memory (4 KiB pages) for the whole run.
 *
 * Two ways to clone:
 *   vm (default)  the child shares our memory and runs on a small stack of its own: CLONE_VM|CLONE_VFORK
 *                 when no user namespace is asked for (Go, posix_spawn), CLONE_VM alone with one (the
 *                 parent must run to write the maps; it waits for the child's exit before reusing the
 *                 stack). Page tables are never copied: the cost does not grow with -m.
 *   fork (-F)     clone(flags|SIGCHLD) without CLONE_VM: a copying fork, what Go does for user namespaces.
 *
 * Serve mode reads one command per line from stdin, "N FLAGS MODE PROG [ARGS...]" (MODE vm or fork),
 * and answers one line of N per-spawn times in ns; "mem BYTES" (re)sizes the held memory and answers
 * "ok". This is the lower bound the benchmark compares against: no signal reset, no fd hygiene, no
 * error pipe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define STACK_SIZE (64 * 1024)
#define MAX_ARGS 64

struct job {
    const char *prog;
    char **argv;
    int map_fd;  /* read end of the map pipe, or -1 */
};

static char *empty_env[] = {NULL};
static char *stack;
static void *held = MAP_FAILED;
static size_t held_size;

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Hold `size` bytes of private anonymous memory, every 4 KiB page written (no huge pages). */
static void hold_memory(size_t size)
{
    size_t off;

    if (held != MAP_FAILED)
        munmap(held, held_size);
    held = MAP_FAILED;
    held_size = size;
    if (!size)
        return;
    held = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (held == MAP_FAILED)
        die("mmap");
    madvise(held, size, MADV_NOHUGEPAGE);
    madvise(held, size, MADV_POPULATE_WRITE); /* faster than faulting page by page; may be ENOSYS-like */
    for (off = 0; off < size; off += 4096)
        ((volatile char *)held)[off] = 1;
}

/* The child with CLONE_VM: raw syscalls only (errno and the stack belong to the parent). */
static int child(void *arg)
{
    struct job *j = arg;
    int msg;

    if (j->map_fd >= 0 && syscall(SYS_read, j->map_fd, &msg, sizeof(msg)) != sizeof(msg))
        syscall(SYS_exit_group, 126);
    syscall(SYS_execve, j->prog, j->argv, empty_env);
    syscall(SYS_exit_group, 127);
    return 0;
}

static void write_file(pid_t pid, const char *name, const char *data)
{
    char path[64];
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data))
        die(path);
    close(fd);
}

/* One spawn + wait; returns its duration in ns. */
static int64_t spawn_once(const char *prog, char **argv, unsigned long flags, int fork_mode)
{
    int userns = (flags & CLONE_NEWUSER) != 0, pipefd[2] = {-1, -1}, status, go = 0;
    struct job j = {prog, argv, -1};
    char map[64];
    int64_t t0 = now_ns();
    pid_t pid;

    if (userns) {
        if (pipe2(pipefd, O_CLOEXEC) < 0)
            die("pipe2");
        j.map_fd = pipefd[0];
    }
    if (fork_mode) {
        pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
        if (pid == 0)
            child(&j);
    } else {
        pid = clone(child, stack + STACK_SIZE, (int)(flags | CLONE_VM | (userns ? 0 : CLONE_VFORK) | SIGCHLD),
                    &j);
    }
    if (pid < 0)
        die("clone");
    if (userns) {
        close(pipefd[0]);
        snprintf(map, sizeof(map), "0 %d 1\n", (int)getuid());
        write_file(pid, "uid_map", map);
        write_file(pid, "setgroups", "deny");
        snprintf(map, sizeof(map), "0 %d 1\n", (int)getgid());
        write_file(pid, "gid_map", map);
        if (write(pipefd[1], &go, sizeof(go)) != sizeof(go))
            die("write map pipe");
        close(pipefd[1]);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "c_spawn: %s: child status 0x%x\n", prog, status);
        exit(3);
    }
    return now_ns() - t0;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int serve(void)
{
    char line[4096], *tok[MAX_ARGS + 4], *save;
    int n, ntok, fork_mode;
    unsigned long flags;

    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    while (fgets(line, sizeof(line), stdin)) {
        ntok = 0;
        for (char *t = strtok_r(line, " \t\n", &save); t && ntok < MAX_ARGS + 3; t = strtok_r(NULL, " \t\n", &save))
            tok[ntok++] = t;
        tok[ntok] = NULL;
        if (ntok == 2 && !strcmp(tok[0], "mem")) {
            hold_memory(strtoull(tok[1], NULL, 0));
            printf("ok\n");
        } else if (ntok >= 4) {
            n = atoi(tok[0]);
            flags = strtoul(tok[1], NULL, 0);
            fork_mode = !strcmp(tok[2], "fork");
            for (int i = 0; i < n; i++)
                printf(i ? " %lld" : "%lld", (long long)spawn_once(tok[3], tok + 3, flags, fork_mode));
            printf("\n");
        } else {
            fprintf(stderr, "c_spawn: bad command\n");
            return 2;
        }
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int opt, n = 1000, fork_mode = 0, serving = 0;
    unsigned long flags = 0;
    int64_t *times;

    while ((opt = getopt(argc, argv, "+n:f:m:Fs")) != -1) {
        switch (opt) {
        case 'n': n = atoi(optarg); break;
        case 'f': flags = strtoul(optarg, NULL, 0); break;
        case 'm': hold_memory(strtoull(optarg, NULL, 0)); break;
        case 'F': fork_mode = 1; break;
        case 's': serving = 1; break;
        default:
            fprintf(stderr, "usage: %s [-n N] [-f FLAGS] [-m BYTES] [-F] -- PROG [ARGS...] | -s [-m BYTES]\n",
                    argv[0]);
            return 2;
        }
    }
    stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        die("mmap stack");
    if (serving)
        return serve();
    if (optind >= argc || n < 1) {
        fprintf(stderr, "%s: PROG missing\n", argv[0]);
        return 2;
    }
    times = calloc((size_t)n, sizeof(*times));
    for (int i = 0; i < n; i++)
        times[i] = spawn_once(argv[optind], argv + optind, flags, fork_mode);
    qsort(times, (size_t)n, sizeof(*times), cmp64);
    printf("%lld ns/spawn (median of %d)\n", (long long)times[n / 2], n);
    return 0;
}
