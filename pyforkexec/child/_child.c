/*
 * The child of pyforkexec: everything that runs between clone and execve.
 *
 * Python (plan.py) validates the attributes and compiles them into a flat list of steps; this file only
 * runs that list, in order, like Go's forkAndExecInChild1. The child shares the parent's memory
 * (CLONE_VM) and runs on a stack of its own, so it must not allocate, take locks, or touch errno or
 * any other thread-local state: every call here is a raw system call. The first failing step writes
 * {errno, location, index} to the error pipe and exits 253; EOF on that CLOEXEC pipe means execve
 * succeeded.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "pyforkexec's child supports x86_64 and aarch64"
#endif

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RESOLVE_NO_MAGICLINKS
#define RESOLVE_NO_MAGICLINKS 0x02
#endif
#ifndef RESOLVE_IN_ROOT
#define RESOLVE_IN_ROOT 0x10
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif
/* statfs f_flags (linux/statfs.h); the first six equal their MS_* counterparts */
#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif
#define ST_KEEP_AS_MS (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME)
#define ST_RELATIME_FLAG 0x1000
#define ST_NOSYMFOLLOW_FLAG 0x2000
#define MS_ATIME_MODES (MS_NOATIME | MS_RELATIME | MS_STRICTATIME)
#define CAPS_EFFECTIVE_ALL 1  /* OP_CAPS: make the effective set equal the new permitted set */

#define CHILD_STACK_SIZE (64 * 1024)
#define EXIT_SETUP_FAILED 253

/* Operations of a step; steps.py reads these names from OPS. Arguments by name: STEP_FIELDS below. */
enum op {
    OP_SYSCALL = 1,       /* nr(arg0..arg5); fails when it returns < 0 */
    OP_MAP_PIPE,          /* close(close_fd); read the parent's {errno, index} from read_fd */
    OP_WRITE_FILE,        /* open(path, O_WRONLY), write(data, size bytes), close */
    OP_FOREGROUND,        /* ioctl(ctty, TIOCSPGRP, pgid ? pgid : getpid()) */
    OP_SIGNALS,           /* reset handlers (those in mask force_default always), restore the parent's mask */
    OP_CAPS,              /* capget; permitted, inheritable: AND keep (keep_lo|keep_hi<<32), then OR add
                           * (add_lo|add_hi<<32); effective: AND keep, or the new permitted if
                           * effective & CAPS_EFFECTIVE_ALL; capset */
    OP_PDEATHSIG_CHECK,   /* if getppid() != ppid: kill(getpid(), signal) */
    OP_FDS,               /* Go's two dup3 passes over ProcAttr.files from nextfd; fcntl fails at fcntl_loc */
    OP_CLOEXEC_FROM,      /* mark every fd >= first_fd close-on-exec */
    OP_EXECVE,            /* execve(argv0, argv, envp); if exec_fd >= 0 execveat(exec_fd, "", ..., AT_EMPTY_PATH) */
    OP_CREATE,            /* mkdirat(dirfd, path, mode), or if is_file an empty file; an existing one is fine */
    OP_REMOUNT,           /* mount_setattr(path, at_flags (0 or AT_RECURSIVE), attr); before 5.12: remount
                           * path (top mount only) with MS_* flags ms_flags plus the locked flags it has,
                           * or ENOSYS for AT_RECURSIVE, which a remount cannot honour */
    OP_SYNC,              /* close(close_fd); tell the parent on socket we are ready; wait for its byte */
    OP_SECCOMP,           /* install the count-instruction filter; with EACCES set no_new_privs and retry */
    OP_IN_ROOT,           /* open path as a process chrooted at root would find it (openat2 RESOLVE_IN_ROOT:
                           * its symlinks and ".." never leave root), as fd slot (O_PATH, close-on-exec) */
};

/* One step, packed by steps.py as "=iiiiq6q". Bit j of refs: a[j] indexes the blobs tuple. */
struct step {
    int32_t op, loc, index, refs;
    int64_t nr;
    int64_t a[6];
};

/* The named arguments of each operation: X(OP, name, j) says a[j] of an OP_<OP> step is its <name>.
 * The steps read them as ARG(s, OP, name); steps.py's FIELDS names the same a[j] on the Python side,
 * and tests/test_step_layout.py compares the two (this table is exported as _child.FIELDS). */
#define STEP_FIELDS(X)                                                                              \
    X(SYSCALL, arg0, 0) X(SYSCALL, arg1, 1) X(SYSCALL, arg2, 2) X(SYSCALL, arg3, 3)                 \
    X(SYSCALL, arg4, 4) X(SYSCALL, arg5, 5)                                                         \
    X(MAP_PIPE, close_fd, 0) X(MAP_PIPE, read_fd, 1)                                                \
    X(WRITE_FILE, path, 0) X(WRITE_FILE, data, 1) X(WRITE_FILE, size, 2)                            \
    X(FOREGROUND, ctty, 0) X(FOREGROUND, pgid, 1)                                                   \
    X(SIGNALS, force_default, 0)                                                                    \
    X(CAPS, keep_lo, 0) X(CAPS, keep_hi, 1) X(CAPS, add_lo, 2) X(CAPS, add_hi, 3)                   \
    X(CAPS, effective, 4)                                                                           \
    X(PDEATHSIG_CHECK, ppid, 0) X(PDEATHSIG_CHECK, signal, 1)                                       \
    X(FDS, nextfd, 0) X(FDS, fcntl_loc, 1)                                                          \
    X(CLOEXEC_FROM, first_fd, 0)                                                                    \
    X(EXECVE, exec_fd, 0)                                                                           \
    X(CREATE, path, 0) X(CREATE, mode, 1) X(CREATE, is_file, 2) X(CREATE, dirfd, 3)                 \
    X(REMOUNT, path, 0) X(REMOUNT, attr, 1) X(REMOUNT, at_flags, 2) X(REMOUNT, ms_flags, 3)         \
    X(SYNC, socket, 0) X(SYNC, close_fd, 1)                                                         \
    X(SECCOMP, filter, 0) X(SECCOMP, count, 1)                                                      \
    X(IN_ROOT, root, 0) X(IN_ROOT, path, 1) X(IN_ROOT, slot, 2)
#define FIELD_ENUM(op, name, j) FIELD_##op##_##name = j,
enum step_field { STEP_FIELDS(FIELD_ENUM) };
#define ARG(s, op, name) ((s)->a[FIELD_##op##_##name])

struct ctx {
    struct step *steps;
    Py_ssize_t nsteps;
    const char *argv0;
    char **argv, **envp;
    int *fds;             /* scratch copy of ProcAttr.files the child may rewrite */
    Py_ssize_t nfds;
    int errfd;            /* -1 with CLONE_VFORK: the failure is left in err/loc/index instead */
    int32_t err;          /* the failing step's errno (vfork mode) */
    int cleared;          /* CLONE_CLEAR_SIGHAND took effect */
    uint64_t oldmask;     /* the parent's signal mask, restored by OP_SIGNALS */
    int32_t loc, index;   /* what a failure reports; a step may refine them */
    int pidfd;
    void *stack;
    PyObject *keep;       /* the plan's objects the child reads, alive until finish() */
};

/* ---- raw system calls: no errno, no glibc wrappers (they may lock or signal threads) ---- */

static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
    long ret;
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
#else
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ __volatile__("svc #0"
                         : "+r"(x0)
                         : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                         : "memory");
    ret = x0;
#endif
    return ret;
}
#define sys0(n) sys6(n, 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(n, a, b, c, d, e) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

struct clone_args3 {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

/* clone3 onto the child's own stack: the child calls fn(arg) there and never returns to C code
 * of the parent's frame, which it would corrupt while sharing memory. */
static long clone3_on_stack(struct clone_args3 *args, int (*fn)(void *), void *arg)
{
#if defined(__x86_64__)
    long ret;
    register void *r12 __asm__("r12") = arg;
    register void *r13 __asm__("r13") = (void *)fn;
    __asm__ __volatile__("syscall\n\t"
                         "testq %%rax, %%rax\n\t"
                         "jnz 1f\n\t"
                         "xorl %%ebp, %%ebp\n\t"
                         "movq %%r12, %%rdi\n\t"
                         "callq *%%r13\n\t"
                         "movq %%rax, %%rdi\n\t"
                         "movl %[exit], %%eax\n\t"
                         "syscall\n\t"
                         "hlt\n"
                         "1:"
                         : "=a"(ret)
                         : "a"((long)SYS_clone3), "D"(args), "S"(sizeof(*args)), "r"(r12), "r"(r13),
                           [exit] "i"(SYS_exit_group)
                         : "rcx", "r11", "memory");
    return ret;
#else
    register long x8 __asm__("x8") = SYS_clone3;
    register long x0 __asm__("x0") = (long)args;
    register long x1 __asm__("x1") = sizeof(*args);
    register void *x19 __asm__("x19") = arg;
    register void *x20 __asm__("x20") = (void *)fn;
    __asm__ __volatile__("svc #0\n\t"
                         "cbnz x0, 1f\n\t"
                         "mov x29, xzr\n\t"
                         "mov x0, x19\n\t"
                         "blr x20\n\t"
                         "mov x8, %[exit]\n\t"
                         "svc #0\n"
                         "1:"
                         : "+r"(x0)
                         : "r"(x8), "r"(x1), "r"(x19), "r"(x20), [exit] "i"(SYS_exit_group)
                         : "x30", "memory");
    return x0;
#endif
}

/* ---- the steps ---- */

static long step_map_pipe(struct ctx *c, const struct step *s)
{
    int32_t msg[2] = {0, 0};
    long r;

    sys1(SYS_close, ARG(s, MAP_PIPE, close_fd));
    r = sys3(SYS_read, ARG(s, MAP_PIPE, read_fd), msg, sizeof(msg));
    if (r < 0)
        return r;
    if (r != sizeof(msg))
        return -EINVAL;  /* the parent went away before writing the maps */
    c->index = msg[1];
    return -msg[0];
}

static long step_write_file(const struct step *s)
{
    long fd = sys4(SYS_openat, AT_FDCWD, ARG(s, WRITE_FILE, path), O_WRONLY | O_CLOEXEC, 0);
    long r;

    if (fd < 0)
        return fd;
    r = sys3(SYS_write, fd, ARG(s, WRITE_FILE, data), ARG(s, WRITE_FILE, size));
    sys1(SYS_close, fd);
    return r < 0 ? r : 0;
}

static long step_foreground(const struct step *s)
{
    int32_t pgrp = (int32_t)(ARG(s, FOREGROUND, pgid) ? ARG(s, FOREGROUND, pgid) : sys0(SYS_getpid));

    return sys3(SYS_ioctl, ARG(s, FOREGROUND, ctty), TIOCSPGRP, &pgrp);
}

/* The kernel's struct sigaction for rt_sigaction. */
struct ksigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
};

static long step_signals(struct ctx *c, const struct step *s)
{
    static const struct ksigaction dfl;  /* SIG_DFL, no flags */
    struct ksigaction old;
    uint64_t force = (uint64_t)ARG(s, SIGNALS, force_default);
    int sig;

    for (sig = 1; sig <= 64; sig++) {
        int forced = (int)((force >> (sig - 1)) & 1);
        if (sig == SIGKILL || sig == SIGSTOP || (c->cleared && !forced))
            continue;
        if (!forced && (sys4(SYS_rt_sigaction, sig, NULL, &old, 8) < 0 || old.handler == SIG_IGN ||
                        old.handler == SIG_DFL))
            continue;
        sys4(SYS_rt_sigaction, sig, &dfl, NULL, 8);
    }
    return sys4(SYS_rt_sigprocmask, SIG_SETMASK, &c->oldmask, NULL, 8);
}

static long step_caps(const struct step *s)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    long r = sys2(SYS_capget, &hdr, data);
    int i;

    if (r < 0)
        return r;
    for (i = 0; i < 2; i++) {
        uint32_t keep = (uint32_t)(i ? ARG(s, CAPS, keep_hi) : ARG(s, CAPS, keep_lo));
        uint32_t add = (uint32_t)(i ? ARG(s, CAPS, add_hi) : ARG(s, CAPS, add_lo));
        data[i].permitted = (data[i].permitted & keep) | add;
        data[i].inheritable = (data[i].inheritable & keep) | add;
        data[i].effective = (ARG(s, CAPS, effective) & CAPS_EFFECTIVE_ALL) ? data[i].permitted
                                                                           : data[i].effective & keep;
    }
    return sys2(SYS_capset, &hdr, data);
}

static long step_create(const struct step *s)
{
    long r;

    if (!ARG(s, CREATE, is_file)) {
        r = sys3(SYS_mkdirat, ARG(s, CREATE, dirfd), ARG(s, CREATE, path), ARG(s, CREATE, mode));
    } else {
        r = sys4(SYS_openat, ARG(s, CREATE, dirfd), ARG(s, CREATE, path),
                 O_WRONLY | O_CREAT | O_EXCL | O_NOCTTY | O_CLOEXEC, ARG(s, CREATE, mode));
        if (r >= 0)
            r = sys1(SYS_close, r);
    }
    return r == -EEXIST ? 0 : r;
}

/* The kernel's struct open_how (OPEN_HOW_SIZE_VER0). */
struct kopen_how {
    uint64_t flags, mode, resolve;
};

/* A mount target under a new root, found as the program will find it once in that root: an absolute
 * symlink in the root's tree (an image's /var/run -> /run) is followed inside it, not on the caller's
 * side, where the mount, or the directories made for it, would land outside the root and leave the
 * path the program sees unmounted (writable, say). The root is opened here, in the child's own mount
 * namespace: a path looked up from a fd of the parent's would be in the parent's mounts. Before 5.6
 * (no openat2) the step fails: never a lookup that may leave the root. */
static long step_in_root(const struct step *s)
{
    struct kopen_how how = {O_PATH | O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    long root, fd, r;

    root = sys4(SYS_openat, AT_FDCWD, ARG(s, IN_ROOT, root), O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
    if (root < 0)
        return root;
    fd = sys4(SYS_openat2, root, ARG(s, IN_ROOT, path), &how, sizeof(how));
    sys1(SYS_close, root);
    if (fd < 0)
        return fd;
    r = sys3(SYS_dup3, fd, ARG(s, IN_ROOT, slot), O_CLOEXEC);
    sys1(SYS_close, fd);
    return r < 0 ? r : 0;
}

/* The kernel's struct mount_attr (MOUNT_ATTR_SIZE_VER0). */
struct kmount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

static long step_remount(const struct step *s)
{
    struct statfs st;
    unsigned long flags = (unsigned long)ARG(s, REMOUNT, ms_flags);
    long r = sys5(SYS_mount_setattr, AT_FDCWD, ARG(s, REMOUNT, path), ARG(s, REMOUNT, at_flags),
                  ARG(s, REMOUNT, attr), sizeof(struct kmount_attr));

    if (r != -ENOSYS)
        return r;
    /* Before 5.12 only a remount, which changes the top mount alone: a recursive change would leave
     * the submounts as they were (writable, say) while the program runs. Fail closed instead. */
    if (ARG(s, REMOUNT, at_flags) & AT_RECURSIVE)
        return r;
    /* A remount must repeat the flags a user namespace locked (nosuid, nodev, noexec, atime). */
    if ((r = sys2(SYS_statfs, ARG(s, REMOUNT, path), &st)) < 0)
        return r;
    flags |= MS_REMOUNT | MS_BIND | ((unsigned long)st.f_flags & ST_KEEP_AS_MS);
    if (st.f_flags & ST_NOSYMFOLLOW_FLAG)
        flags |= MS_NOSYMFOLLOW;
    if (!(flags & MS_ATIME_MODES))
        flags |= (st.f_flags & ST_RELATIME_FLAG) ? MS_RELATIME : MS_STRICTATIME;
    return sys5(SYS_mount, 0, ARG(s, REMOUNT, path), 0, flags, 0);
}

static long step_sync(const struct step *s)
{
    char byte = 'r';
    long r;

    sys1(SYS_close, ARG(s, SYNC, close_fd));
    r = sys6(SYS_sendto, ARG(s, SYNC, socket), (long)&byte, 1, MSG_NOSIGNAL, 0, 0);
    if (r < 0)
        return r;
    r = sys3(SYS_read, ARG(s, SYNC, socket), &byte, 1);
    if (r < 0)
        return r;
    return r == 1 ? 0 : -ECANCELED;  /* the parent went away without releasing us */
}

/* The kernel's struct sock_fprog. */
struct kfprog {
    unsigned short len;
    void *filter;
};

static long step_seccomp(const struct step *s)
{
    struct kfprog prog = {(unsigned short)ARG(s, SECCOMP, count),
                             (void *)(intptr_t)ARG(s, SECCOMP, filter)};
    long r = sys3(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);

    if (r != -EACCES)
        return r;
    /* Without CAP_SYS_ADMIN the kernel accepts a filter only under no_new_privs. */
    if ((r = sys5(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) < 0)
        return r;
    return sys3(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

static long step_pdeathsig_check(const struct step *s)
{
    if (sys0(SYS_getppid) == ARG(s, PDEATHSIG_CHECK, ppid))
        return 0;
    return sys2(SYS_kill, sys0(SYS_getpid), ARG(s, PDEATHSIG_CHECK, signal));  /* the parent already died */
}

/* Go's fd passes: lift the error pipe and every files[i] < i above nextfd, then place each at i. */
static long step_fds(struct ctx *c, const struct step *s)
{
    int *fd = c->fds;
    long nextfd = ARG(s, FDS, nextfd), r;
    Py_ssize_t i;

    if (c->errfd >= 0 && c->errfd < nextfd) {
        r = sys3(SYS_dup3, c->errfd, nextfd, O_CLOEXEC);
        if (r < 0)
            return r;
        c->errfd = (int)nextfd++;
    }
    for (i = 0; i < c->nfds; i++) {
        if (fd[i] >= 0 && fd[i] < i) {
            if (nextfd == c->errfd)
                nextfd++;
            c->index = (int32_t)i;
            r = sys3(SYS_dup3, fd[i], nextfd, O_CLOEXEC);
            if (r < 0)
                return r;
            fd[i] = (int)nextfd++;
        }
    }
    for (i = 0; i < c->nfds; i++) {
        c->index = (int32_t)i;
        if (fd[i] == -1) {
            sys1(SYS_close, i);
        } else if (fd[i] == i) {
            c->loc = (int32_t)ARG(s, FDS, fcntl_loc);  /* ErrorLocation.FCNTL */
            if ((r = sys3(SYS_fcntl, i, F_SETFD, 0)) < 0)
                return r;
            c->loc = s->loc;
        } else if ((r = sys3(SYS_dup3, fd[i], i, 0)) < 0) {
            return r;
        }
    }
    for (i = c->nfds; i < 3; i++)
        sys1(SYS_close, i);
    return 0;
}

/* Each fd >= first listed in /proc/self/fd marked close-on-exec; -errno when the list cannot be read
 * or is not this process's fd table. The path is looked up in the child's root, which may be a
 * caller's chroot, pivot_root or mounts: a directory there that is not procfs's (an empty one at
 * /proc/self/fd, a tmpfs at /proc) would list no fd at all, so the list counts only from a proc
 * filesystem and only if it names the fd it was read through. */
static long cloexec_listed(long first)
{
    /* struct linux_dirent64: d_ino, d_off (8 bytes each), d_reclen (2), d_type (1), d_name */
    char buf[1024] __attribute__((aligned(8)));
    struct statfs st;
    int seen_dir = 0;
    long n, off, fd, dir = sys4(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);

    if (dir < 0)
        return dir;
    if ((n = sys2(SYS_fstatfs, dir, &st)) < 0 || st.f_type != PROC_SUPER_MAGIC) {
        sys1(SYS_close, dir);
        return n < 0 ? n : -EXDEV;
    }
    while ((n = sys3(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
        for (off = 0; off < n; off += *(unsigned short *)(buf + off + 16)) {
            const char *name = buf + off + 19;
            for (fd = 0; *name >= '0' && *name <= '9'; name++)
                fd = fd * 10 + (*name - '0');
            if (*name != '\0' || name == buf + off + 19)
                continue;
            if (fd == dir)
                seen_dir = 1;
            else if (fd >= first)
                sys3(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
        }
    }
    sys1(SYS_close, dir);
    return n < 0 ? n : seen_dir ? 0 : -ESRCH;
}

static long step_cloexec_from(const struct step *s)
{
    struct rlimit rl;
    long fd, last, first = ARG(s, CLOEXEC_FROM, first_fd);
    long r = sys3(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC);

    /* Before 5.11 (EINVAL: no CLOSE_RANGE_CLOEXEC; ENOSYS before 5.9), or a seccomp filter that
     * refuses close_range (a container's EPERM): the fds open, from /proc/self/fd, as CPython's
     * _posixsubprocess finds them. An fd may be open above the soft limit (one lowered after it was
     * opened), so without that list (no /proc in a new root, Landlock, a uid that may not read it)
     * every fd up to the hard limit, the most the table could have grown to. */
    if (r != -ENOSYS && r != -EINVAL && r != -EPERM)
        return r;
    if (cloexec_listed(first) == 0)
        return 0;
    if ((r = sys4(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl)) < 0)
        return r;
    last = (long)(rl.rlim_max > rl.rlim_cur ? rl.rlim_max : rl.rlim_cur);
    if (last > INT_MAX || last < 0)
        last = INT_MAX;
    for (fd = first; fd < last; fd++)
        sys3(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
    return 0;
}

static long step_execve(struct ctx *c, const struct step *s)
{
    if (ARG(s, EXECVE, exec_fd) >= 0)
        return sys5(SYS_execveat, ARG(s, EXECVE, exec_fd), "", c->argv, c->envp, AT_EMPTY_PATH);
    return sys3(SYS_execve, c->argv0, c->argv, c->envp);
}

static long run_step(struct ctx *c, const struct step *s)
{
    switch (s->op) {
    case OP_SYSCALL:
        return sys6(s->nr, ARG(s, SYSCALL, arg0), ARG(s, SYSCALL, arg1), ARG(s, SYSCALL, arg2),
                    ARG(s, SYSCALL, arg3), ARG(s, SYSCALL, arg4), ARG(s, SYSCALL, arg5));
    case OP_MAP_PIPE:
        return step_map_pipe(c, s);
    case OP_WRITE_FILE:
        return step_write_file(s);
    case OP_FOREGROUND:
        return step_foreground(s);
    case OP_SIGNALS:
        return step_signals(c, s);
    case OP_CAPS:
        return step_caps(s);
    case OP_PDEATHSIG_CHECK:
        return step_pdeathsig_check(s);
    case OP_FDS:
        return step_fds(c, s);
    case OP_CLOEXEC_FROM:
        return step_cloexec_from(s);
    case OP_EXECVE:
        return step_execve(c, s);
    case OP_CREATE:
        return step_create(s);
    case OP_REMOUNT:
        return step_remount(s);
    case OP_SYNC:
        return step_sync(s);
    case OP_SECCOMP:
        return step_seccomp(s);
    case OP_IN_ROOT:
        return step_in_root(s);
    }
    return -ENOSYS;
}

/* The child: run the steps; the first failure is reported and ends it. */
static int child_main(void *arg)
{
    struct ctx *c = arg;
    Py_ssize_t i;
    long r = -EINVAL;  /* a plan that does not end in execve */

    for (i = 0; i < c->nsteps; i++) {
        c->loc = c->steps[i].loc;
        c->index = c->steps[i].index;
        r = run_step(c, &c->steps[i]);
        if (r < 0)
            break;
    }
    /* Shared memory: the vfork parent reads it once we exit; with a pipe, finish() reads it when the
     * pipe says nothing (a seccomp filter installed before a failed execve failed or killed the write). */
    c->err = (int32_t)-r;
    if (c->errfd >= 0) {
        int32_t msg[4] = {(int32_t)-r, c->loc, c->index, 0};
        sys3(SYS_write, c->errfd, msg, sizeof(msg));
    }
    /* A seccomp filter installed just before a failed execve may fail exit_group (and exit) with an
     * errno: retrying would spin for ever, and the vfork parent with it. A fault then ends the
     * child as glibc's _exit does (the kernel forces SIGILL's default action, blocked or not). */
    sys1(SYS_exit_group, EXIT_SETUP_FAILED);
    sys1(SYS_exit, EXIT_SETUP_FAILED);
    __builtin_trap();
    return 0;
}

/* ---- the parent side ---- */

static const char CAPSULE[] = "pyforkexec._child.ctx";
static int finished_marker;
static int have_clone3 = 1;

/* One spare child stack, kept warm between spawns (its pages stay faulted in: a fresh mmap costs a
 * page fault per touched page in the child). Only touched with the GIL held. */
static void *spare_stack;

static void *stack_get(void)
{
    void *stack = spare_stack;

    if (stack) {
        spare_stack = NULL;
        return stack;
    }
    return mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
}

/* Called once no child can use the stack any more (after EOF on the error pipe). */
static void stack_put(void *stack)
{
    if (!spare_stack)
        spare_stack = stack;
    else
        munmap(stack, CHILD_STACK_SIZE);
}

static void ctx_free(struct ctx *c)
{
    stack_put(c->stack);
    Py_XDECREF(c->keep);
    PyMem_Free(c);
}

/* A capsule dropped before finish() may still be in use by a live child: leak it rather than risk that. */
static void capsule_destructor(PyObject *cap)
{
    (void)cap;
}

static int bytes_array(PyObject *seq, char **out, Py_ssize_t n)
{
    Py_ssize_t i;

    for (i = 0; i < n; i++) {
        out[i] = PyBytes_AsString(PyTuple_GetItem(seq, i));
        if (!out[i])
            return -1;
    }
    out[n] = NULL;
    return 0;
}

static struct ctx *ctx_new(PyObject *steps, PyObject *blobs, PyObject *argv0, PyObject *argv, PyObject *envp,
                           PyObject *fds, int errfd)
{
    Py_ssize_t nbytes = PyBytes_Size(steps), nargv = PyTuple_Size(argv), nenv = PyTuple_Size(envp);
    Py_ssize_t nfds = PyTuple_Size(fds), nsteps, i, j;
    struct ctx *c;
    char *p;

    if (nbytes < 0 || nargv < 0 || nenv < 0 || nfds < 0 || PyTuple_Size(blobs) < 0)
        return NULL;
    if (nbytes % (Py_ssize_t)sizeof(struct step)) {
        PyErr_SetString(PyExc_ValueError, "steps: not a whole number of steps");
        return NULL;
    }
    nsteps = nbytes / (Py_ssize_t)sizeof(struct step);
    c = PyMem_Malloc(sizeof(*c) + (size_t)nbytes + sizeof(char *) * (size_t)(nargv + nenv + 2) +
                     sizeof(int) * (size_t)nfds);
    if (!c) {
        PyErr_NoMemory();
        return NULL;
    }
    memset(c, 0, sizeof(*c));
    p = (char *)(c + 1);
    c->steps = (struct step *)p;
    memcpy(c->steps, PyBytes_AsString(steps), (size_t)nbytes);
    c->nsteps = nsteps;
    p += nbytes;
    c->argv = (char **)p;
    c->envp = c->argv + nargv + 1;
    c->fds = (int *)(c->envp + nenv + 1);
    c->nfds = nfds;
    c->errfd = errfd;
    c->pidfd = -1;
    c->stack = MAP_FAILED;
    if (bytes_array(argv, c->argv, nargv) < 0 || bytes_array(envp, c->envp, nenv) < 0 ||
        !(c->argv0 = PyBytes_AsString(argv0)))
        goto fail;
    for (i = 0; i < nfds; i++) {
        c->fds[i] = (int)PyLong_AsLong(PyTuple_GetItem(fds, i));
        if (c->fds[i] == -1 && PyErr_Occurred())
            goto fail;
    }
    for (i = 0; i < nsteps; i++) {
        for (j = 0; j < 6; j++) {
            if (c->steps[i].refs & (1 << j)) {
                char *blob = PyBytes_AsString(PyTuple_GetItem(blobs, (Py_ssize_t)c->steps[i].a[j]));
                if (!blob)
                    goto fail;
                c->steps[i].a[j] = (int64_t)(intptr_t)blob;
            }
        }
    }
    c->stack = stack_get();
    if (c->stack == MAP_FAILED) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto fail;
    }
    c->keep = PyTuple_Pack(5, steps, blobs, argv0, argv, envp);
    if (!c->keep)
        goto fail;
    return c;
fail:
    if (c->stack != MAP_FAILED)
        stack_put(c->stack);
    PyMem_Free(c);
    return NULL;
}

/* clone3, or clone(2) on kernels before 5.3 when nothing needs clone3. Returns pid or -errno. */
static long do_clone(struct ctx *c, uint64_t flags, int cgroup_fd)
{
    char *top = (char *)c->stack + CHILD_STACK_SIZE;
    long pid = -ENOSYS;

    if (have_clone3) {
        struct clone_args3 args;
        memset(&args, 0, sizeof(args));
        args.flags = flags;
        args.pidfd = (uint64_t)(uintptr_t)&c->pidfd;
        /* clone3 wants no exit signal with CLONE_PARENT: the child is our parent's, and signals it
         * as we would (clone(2) ignores the low byte there the same way). */
        args.exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD;
        args.stack = (uint64_t)(uintptr_t)c->stack;
        args.stack_size = CHILD_STACK_SIZE;
        args.cgroup = (uint64_t)(cgroup_fd < 0 ? 0 : cgroup_fd);
        c->cleared = (flags & CLONE_CLEAR_SIGHAND) != 0;
        pid = clone3_on_stack(&args, child_main, c);
        if (pid != -ENOSYS)
            return pid;
        have_clone3 = 0;
    }
    if (flags & (CLONE_INTO_CGROUP | CLONE_NEWTIME))
        return -ENOSYS;
    c->cleared = 0;
    pid = clone(child_main, top, (int)(flags & 0xffffff00ULL & ~CLONE_CLEAR_SIGHAND) | SIGCHLD, c,
                &c->pidfd);
    return pid < 0 ? -errno : pid;
}

/* Kill and reap a child whose pid cannot be handed to the caller, and close its pidfd. */
static void undo_spawn(long pid, int pidfd)
{
    Py_BEGIN_ALLOW_THREADS
    kill((pid_t)pid, SIGKILL);
    while (waitpid((pid_t)pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
    if (pidfd >= 0)
        close(pidfd);
    Py_END_ALLOW_THREADS
}

/* A CLONE_VFORK child that failed has exited by the time clone returns: reap it (unless it is our
 * parent's, CLONE_PARENT), close its pidfd. Nothing of it is left for the caller to undo. */
static void reap_failed(long pid, int pidfd)
{
    Py_BEGIN_ALLOW_THREADS
    while (waitpid((pid_t)pid, NULL, __WALL) < 0 && errno == EINTR)
        ;
    if (pidfd >= 0)
        close(pidfd);
    Py_END_ALLOW_THREADS
}

static PyObject *str_pid, *str_pidfd, *str_handle, *str_failure;

/* Set what spawn() records. The attributes exist already (forkexec._Spawn.__init__), so setting them
 * replaces dict values without allocating, and runs no Python code. */
static int record(PyObject *into, PyObject *pid, PyObject *pidfd, PyObject *handle, PyObject *failure)
{
    if (!pid || !pidfd || !handle || !failure)
        return -1;
    if (PyObject_SetAttr(into, str_handle, handle) < 0 || PyObject_SetAttr(into, str_failure, failure) < 0 ||
        PyObject_SetAttr(into, str_pidfd, pidfd) < 0)
        return -1;
    return PyObject_SetAttr(into, str_pid, pid);  /* last: abort() kills only a pid recorded whole */
}

/* spawn(into, steps, blobs, argv0, argv, envp, fds, errfd, flags, cgroup_fd) -> None
 *
 * Clone a child that runs the steps, and record it in ``into`` (a forkexec._Spawn: pid, pidfd, handle,
 * failure) before returning. No Python code runs between the clone and the record, so a signal
 * handler that raises (it runs at the next bytecode at the earliest) always finds the child recorded
 * for the caller's undo: a spawn that opens nothing else needs no signal hold (see forkexec.py).
 *
 * With CLONE_VFORK (and then no error pipe: errfd -1) clone returns once the child exec'd or exited:
 * handle None, failure None or (errno, location, index); a failed child is reaped here (pid -1).
 * Otherwise the child may still run on our memory: handle is what finish() takes, failure None. */
static PyObject *spawn(PyObject *self, PyObject *args)
{
    PyObject *into, *steps, *blobs, *argv0, *argv, *envp, *fds, *handle, *failure = Py_None, *pid_obj, *pidfd_obj;
    unsigned long long flags;
    int errfd, cgroup_fd, pidfd, ok;
    sigset_t all, old;
    struct ctx *c;
    long pid;

    if (!PyArg_ParseTuple(args, "OSO!SO!O!O!iKi:spawn", &into, &steps, &PyTuple_Type, &blobs, &argv0,
                          &PyTuple_Type, &argv, &PyTuple_Type, &envp, &PyTuple_Type, &fds, &errfd, &flags,
                          &cgroup_fd))
        return NULL;
    if ((flags & CLONE_VFORK) && errfd >= 0) {
        PyErr_SetString(PyExc_ValueError, "spawn: a CLONE_VFORK child reports in shared memory, not a pipe");
        return NULL;
    }
    if (!(c = ctx_new(steps, blobs, argv0, argv, envp, fds, errfd)))
        return NULL;

    Py_BEGIN_ALLOW_THREADS
    /* Block every signal so no handler runs in the child on shared memory; the child resets its
     * handlers and restores this mask (OP_SIGNALS). sigprocmask, not pthread_sigmask: on Linux both
     * set this thread's mask, and pthread_sigmask@GLIBC_2.32 would keep the wheel from loading on
     * glibc 2.31 (Debian 11). */
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    memcpy(&c->oldmask, &old, sizeof(c->oldmask));
    pid = do_clone(c, flags, cgroup_fd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    Py_END_ALLOW_THREADS

    if (pid < 0) {
        ctx_free(c);
        errno = (int)-pid;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    pidfd = c->pidfd;
    if (flags & CLONE_VFORK) {
        int32_t err = c->err, loc = c->loc, index = c->index;

        ctx_free(c);  /* it exec'd or exited: it no longer runs on it */
        Py_INCREF(Py_None);
        handle = Py_None;
        if (err) {
            reap_failed(pid, pidfd);
            pid = -1, pidfd = -1;
            failure = Py_BuildValue("iii", err, loc, index);
        } else {
            Py_INCREF(failure);
        }
    } else if (!(handle = PyCapsule_New(c, CAPSULE, capsule_destructor))) {
        undo_spawn(pid, pidfd);  /* out of memory: the child is gone, and with it its use of c */
        ctx_free(c);
        return NULL;
    } else {
        Py_INCREF(failure);
    }
    pid_obj = PyLong_FromLong(pid);
    pidfd_obj = PyLong_FromLong(pidfd);
    ok = record(into, pid_obj, pidfd_obj, handle, failure) == 0;
    Py_XDECREF(pid_obj);
    Py_XDECREF(pidfd_obj);
    Py_DECREF(handle);
    Py_XDECREF(failure);
    if (!ok) {
        PyObject *type, *value, *tb, *none = PyLong_FromLong(-1);

        PyErr_Fetch(&type, &value, &tb);
        if (none)  /* whatever was recorded is undone below: take it back (best effort) */
            PyObject_SetAttr(into, str_pidfd, none);
        Py_XDECREF(none);
        PyErr_Clear();
        PyErr_Restore(type, value, tb);
        if (pid > 0)  /* never recorded: ours to undo (a non-vfork child's ctx leaks: the capsule never frees it) */
            undo_spawn(pid, pidfd);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* finish(handle, errpipe) -> None | (errno, location, index): read the error pipe to EOF (the child
 * exec'd or exited and no longer uses its stack), then free what the child used. */
static PyObject *finish(PyObject *self, PyObject *args)
{
    PyObject *handle;
    int fd;
    struct ctx *c;
    int32_t msg[4] = {0, 0, 0, 0};
    size_t got = 0;
    char sink[64];
    ssize_t n = 0;

    if (!PyArg_ParseTuple(args, "Oi:finish", &handle, &fd))
        return NULL;
    if (!(c = PyCapsule_GetPointer(handle, CAPSULE)))
        return NULL;
    if (c == (void *)&finished_marker) {
        PyErr_SetString(PyExc_RuntimeError, "finish: already finished");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        if (got < sizeof(msg))
            n = read(fd, (char *)msg + got, sizeof(msg) - got);
        else
            n = read(fd, sink, sizeof(sink));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (got < sizeof(msg))
            got += (size_t)n;
    }
    Py_END_ALLOW_THREADS
    if (n < 0)
        return PyErr_SetFromErrno(PyExc_OSError);  /* keep c: the child's state is unknown */
    if (got == 0 && c->err) {  /* it failed, and a seccomp filter failed or killed its write */
        msg[0] = c->err, msg[1] = c->loc, msg[2] = c->index;
        got = sizeof(msg);
    }
    ctx_free(c);
    PyCapsule_SetPointer(handle, &finished_marker);
    if (got == 0)
        Py_RETURN_NONE;
    if (got != sizeof(msg))
        return Py_BuildValue("iii", EPIPE, 0, 0);
    return Py_BuildValue("iii", msg[0], msg[1], msg[2]);
}

/* setns(fd, nstype) for the calling thread (os.setns is Python 3.12+). */
static PyObject *py_setns(PyObject *self, PyObject *args)
{
    int fd, nstype;

    if (!PyArg_ParseTuple(args, "ii:setns", &fd, &nstype))
        return NULL;
    if (setns(fd, nstype) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

/* The exceptions until_done kept from the calls that raised (the module's ``dropped`` list). */
static PyObject *dropped;

/* until_done(fn, times): fn() until a call returns without raising, at most ``times`` calls; the
 * exceptions of the calls that raised are kept in ``dropped`` (the last one raised if none returned).
 * For an except clause whose undo must run whole (_signals.seize): a handler of a signal that arrived
 * with the first runs at the entry of the first Python function called, and here that is fn, whose
 * exception this catches; no bytecode of the caller's runs between its call and fn's. The hold that
 * fn starts raises what was kept once it ends (_signals.Hold.release): a Ctrl-C is late, never lost. */
static PyObject *until_done(PyObject *self, PyObject *args)
{
    PyObject *fn, *r = NULL, *type, *value, *tb;
    int times;

    if (!PyArg_ParseTuple(args, "Oi", &fn, &times))
        return NULL;
    while (times-- > 0) {
        if ((r = PyObject_CallObject(fn, NULL)) != NULL || times == 0)
            break;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (value && tb)
            PyException_SetTraceback(value, tb);
        if (!value || PyList_Append(dropped, value) < 0)
            PyErr_Clear();  /* no memory to keep it: dropped, as before */
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
    }
    return r;
}

static PyMethodDef methods[] = {
    {"until_done", until_done, METH_VARARGS, "until_done(fn, times): fn() until a call does not raise"},
    {"spawn", spawn, METH_VARARGS, "spawn(into, steps, blobs, argv0, argv, envp, fds, errfd, flags, cgroup_fd): records pid, pidfd, handle, failure in into"},
    {"finish", finish, METH_VARARGS, "finish(handle, errpipe) -> None | (errno, location, index)"},
    {"setns", py_setns, METH_VARARGS, "setns(fd, nstype)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "pyforkexec._child", NULL, -1, methods, NULL, NULL, NULL, NULL};

static int add_table(PyObject *m, const char *name, const char *const *names, const long *values, size_t n)
{
    PyObject *d = PyDict_New();
    size_t i;

    if (!d)
        return -1;
    for (i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLong(values[i]);
        if (!v || PyDict_SetItemString(d, names[i], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return -1;
        }
        Py_DECREF(v);
    }
    return PyModule_AddObject(m, name, d);
}

PyMODINIT_FUNC PyInit__child(void)
{
    /* system call numbers and constants of this architecture, and the step operations */
    static const struct { const char *name; long value; } sys[] = {
        {"setsid", SYS_setsid}, {"setpgid", SYS_setpgid}, {"ioctl", SYS_ioctl}, {"unshare", SYS_unshare},
        {"mount", SYS_mount}, {"umount2", SYS_umount2}, {"chroot", SYS_chroot}, {"chdir", SYS_chdir},
        {"fchdir", SYS_fchdir}, {"setgroups", SYS_setgroups}, {"setgid", SYS_setgid}, {"setuid", SYS_setuid},
        {"prctl", SYS_prctl}, {"ptrace", SYS_ptrace}, {"setns", SYS_setns}, {"sethostname", SYS_sethostname},
        {"setdomainname", SYS_setdomainname}, {"pivot_root", SYS_pivot_root}, {"mkdirat", SYS_mkdirat},
        {"prlimit64", SYS_prlimit64}, {"seccomp", SYS_seccomp}, {"close", SYS_close}, {"write", SYS_write},
        {"read", SYS_read}, {"kill", SYS_kill}, {"mount_setattr", SYS_mount_setattr}, {"statfs", SYS_statfs},
        {"capget", SYS_capget}, {"capset", SYS_capset}, {"sendto", SYS_sendto}, {"execve", SYS_execve},
        {"execveat", SYS_execveat}, {"openat", SYS_openat}, {"exit_group", SYS_exit_group},
        {"landlock_restrict_self", SYS_landlock_restrict_self}, {"move_mount", SYS_move_mount},
    }, consts[] = {
        {"TIOCNOTTY", TIOCNOTTY}, {"TIOCSCTTY", TIOCSCTTY}, {"PR_SET_KEEPCAPS", PR_SET_KEEPCAPS},
        {"PR_CAP_AMBIENT", PR_CAP_AMBIENT}, {"PR_CAP_AMBIENT_RAISE", PR_CAP_AMBIENT_RAISE},
        {"PR_SET_PDEATHSIG", PR_SET_PDEATHSIG}, {"PR_SET_NO_NEW_PRIVS", PR_SET_NO_NEW_PRIVS},
        {"PR_CAPBSET_DROP", PR_CAPBSET_DROP}, {"PTRACE_TRACEME", PTRACE_TRACEME}, {"MS_REC", MS_REC},
        {"MS_PRIVATE", MS_PRIVATE}, {"AT_FDCWD", AT_FDCWD}, {"CLOSE_RANGE_CLOEXEC", CLOSE_RANGE_CLOEXEC},
        {"EXIT_SETUP_FAILED", EXIT_SETUP_FAILED}, {"STEP_SIZE", sizeof(struct step)},
        {"MNT_DETACH", MNT_DETACH}, {"AT_RECURSIVE", AT_RECURSIVE}, {"CAPS_EFFECTIVE_ALL", CAPS_EFFECTIVE_ALL},
        {"MOUNT_ATTR_SIZE", sizeof(struct kmount_attr)}, {"SOCK_FILTER_SIZE", sizeof(struct sock_filter)},
        {"BPF_MAXINSNS", BPF_MAXINSNS}, {"MOVE_MOUNT_F_EMPTY_PATH", MOVE_MOUNT_F_EMPTY_PATH},
        {"MOVE_MOUNT_T_EMPTY_PATH", MOVE_MOUNT_T_EMPTY_PATH},
        /* struct step, member by member (tests/test_step_layout.py) */
        {"STEP_OFFSET_op", offsetof(struct step, op)}, {"STEP_OFFSET_loc", offsetof(struct step, loc)},
        {"STEP_OFFSET_index", offsetof(struct step, index)},
        {"STEP_OFFSET_refs", offsetof(struct step, refs)},
        {"STEP_OFFSET_nr", offsetof(struct step, nr)}, {"STEP_OFFSET_a", offsetof(struct step, a)},
        {"STEP_NARGS", sizeof(((struct step *)0)->a) / sizeof(int64_t)},
    }, ops[] = {
        {"SYSCALL", OP_SYSCALL}, {"MAP_PIPE", OP_MAP_PIPE}, {"WRITE_FILE", OP_WRITE_FILE},
        {"FOREGROUND", OP_FOREGROUND}, {"SIGNALS", OP_SIGNALS}, {"CAPS", OP_CAPS},
        {"PDEATHSIG_CHECK", OP_PDEATHSIG_CHECK}, {"FDS", OP_FDS}, {"CLOEXEC_FROM", OP_CLOEXEC_FROM},
        {"EXECVE", OP_EXECVE}, {"CREATE", OP_CREATE}, {"REMOUNT", OP_REMOUNT}, {"SYNC", OP_SYNC},
        {"SECCOMP", OP_SECCOMP}, {"IN_ROOT", OP_IN_ROOT},
    }, fields[] = {
#define FIELD_ENTRY(op, name, j) {#op "." #name, j},
        STEP_FIELDS(FIELD_ENTRY)
    };
    PyObject *m = PyModule_Create(&module);
    const char *names[128];
    long values[128];
    size_t i;

    if (!m)
        return NULL;
    if (!(str_pid = PyUnicode_InternFromString("pid")) || !(str_pidfd = PyUnicode_InternFromString("pidfd")) ||
        !(str_handle = PyUnicode_InternFromString("handle")) ||
        !(str_failure = PyUnicode_InternFromString("failure"))) {
        Py_DECREF(m);
        return NULL;
    }
#define TABLE(label, t)                                                      \
    for (i = 0; i < sizeof(t) / sizeof((t)[0]); i++) {                       \
        names[i] = (t)[i].name;                                              \
        values[i] = (t)[i].value;                                            \
    }                                                                        \
    if (add_table(m, label, names, values, sizeof(t) / sizeof((t)[0])) < 0) { \
        Py_DECREF(m);                                                        \
        return NULL;                                                         \
    }
    TABLE("SYS", sys)
    TABLE("CONST", consts)
    TABLE("OPS", ops)
    TABLE("FIELDS", fields)
    if (!(dropped = PyList_New(0))) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(dropped);  /* one reference for the module, one for until_done */
    if (PyModule_AddObject(m, "dropped", dropped) < 0) {
        Py_DECREF(dropped);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
