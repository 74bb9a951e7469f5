/*
 * pyforkexec-waiter: what stays in memory while a pyforkexec daemon's service runs.
 *
 *   pyforkexec-waiter PID STOP_TIMEOUT_MS[:STOP_SIGNAL] -- COMMAND [ARGS...]     the daemon's
 *   pyforkexec-waiter PID forward -- COMMAND [ARGS...]             a launcher's
 *   pyforkexec-waiter PID forward-exit -- COMMAND [ARGS...]        a launcher's, nothing to clean up
 *
 * The daemon (python -m pyforkexec.daemon) starts its service, then replaces itself with this
 * program: the same process (its pid file lock, its log fds, its session), so the service stays its
 * only child, but a few hundred KiB instead of an interpreter. Until the service ends it
 *   - passes SIGHUP, SIGUSR1 and SIGUSR2 on to PID;
 *   - on SIGTERM or SIGINT sends STOP_SIGNAL (a number; SIGTERM when not given, as a daemon from before
 *     --stop-signal gives it) then SIGCONT to PID, and STOP_TIMEOUT_MS later SIGKILL to PID's process
 *     group and to PID;
 * or, for a launcher without a terminal (``pyforkexec exec --spec`` as a systemd unit's main
 * process: service/supervise.py), passes every signal a launcher forwards (SIGHUP, SIGINT, SIGQUIT,
 * SIGTERM, SIGUSR1, SIGUSR2) on to PID, the service manager keeping its own stop timeout;
 * and once PID has exited, it execs COMMAND ARGS... --waited STATE --exited-at MS, STATE being "run"
 * (it ended by itself), "stop" (after a stop signal) or "kill" (after the SIGKILL of a stop), MS the
 * CLOCK_MONOTONIC milliseconds when it saw the exit: the daemon again, which reaps PID (left a zombie
 * here, so its pid cannot be reused meanwhile) and applies the restart policy, its delay counted
 * from MS (the interpreter's start-up is part of it, not added to it).
 *
 * In forward-exit mode (a launcher whose child left nothing to remove after it: no cgroup), the way
 * back to Python would only reap PID and exit as it did: this program does that itself, saving the
 * start of a second interpreter. It exits with PID's status, or dies of the signal that killed PID
 * (its core dump limit set to 0 first: the child dumped core, if any), as service/exit.py's exit_like does;
 * COMMAND is exec'd only on a failure here (STATE "error"), which leaves PID unreaped.
 *
 * The daemon blocks these signals before its exec, so none is lost in between: they are read here
 * from a signalfd, and whatever arrives after the last read stays pending, blocked, for the daemon
 * that COMMAND starts. Any failure here execs COMMAND with STATE "error": the daemon then
 * supervises the service itself, as it did before this program existed. Exit status 127 only if
 * COMMAND itself cannot be exec'd (the service is then killed: nobody would be left to stop it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long long now_ms(void)
{
    return now_ns() / 1000000;
}

/* End as PID ended (reaping it): forward-exit mode. Returns only if PID could not be reaped. */
static void exit_as(pid_t pid)
{
    int status;
    pid_t got;
    do
        got = waitpid(pid, &status, 0);
    while (got < 0 && errno == EINTR);
    if (got != pid)
        return;
    if (WIFEXITED(status))
        _exit(WEXITSTATUS(status));
    int signo = WTERMSIG(status);
    struct rlimit core;
    if (getrlimit(RLIMIT_CORE, &core) == 0) {
        core.rlim_cur = 0;
        setrlimit(RLIMIT_CORE, &core);
    }
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, signo);
    signal(signo, SIG_DFL);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
    kill(getpid(), signo);
    _exit(128 + signo);  /* a signal whose default action does not end a process */
}

static int parse_positive(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* STOP_TIMEOUT_MS[:STOP_SIGNAL] */
static int parse_stop(const char *s, long long *timeout_ms, int *stop_signal)
{
    char ms[32];
    const char *colon = strchr(s, ':');
    size_t length = colon ? (size_t)(colon - s) : strlen(s);
    if (length >= sizeof(ms))
        return -1;
    memcpy(ms, s, length);
    ms[length] = '\0';
    long long signo = SIGTERM;
    if (parse_positive(ms, timeout_ms) < 0 || *timeout_ms > 1000000000 /* the daemon's most: 10**6 s */
        || (colon && parse_positive(colon + 1, &signo) < 0) || signo < 1 || signo >= NSIG)
        return -1;
    *stop_signal = (int)signo;
    return 0;
}

/* COMMAND ARGS... --waited STATE --exited-at MS, exec'd in place of this program. */
static void resume(char **command, int count, const char *state, pid_t pid)
{
    char *argv[count + 5], exited_at[32];
    snprintf(exited_at, sizeof(exited_at), "%lld", now_ms());
    memcpy(argv, command, sizeof(char *) * (size_t)count);
    argv[count] = "--waited";
    argv[count + 1] = (char *)state;
    argv[count + 2] = "--exited-at";
    argv[count + 3] = exited_at;
    argv[count + 4] = NULL;
    execv(argv[0], argv);
    fprintf(stderr, "pyforkexec-waiter: cannot exec %s: %s; killing %d, which nobody would stop\n",
            argv[0], strerror(errno), (int)pid);
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    _exit(127);
}

int main(int argc, char **argv)
{
    long long pid_value, timeout_ms = -1;
    int stop_signal = SIGTERM;
    int exit_here = argc >= 3 && strcmp(argv[2], "forward-exit") == 0;
    int forward = exit_here || (argc >= 3 && strcmp(argv[2], "forward") == 0);
    if (argc < 5 || strcmp(argv[3], "--") != 0 || parse_positive(argv[1], &pid_value) < 0
        || pid_value < 1 || (!forward && parse_stop(argv[2], &timeout_ms, &stop_signal) < 0)) {
        fprintf(stderr, "usage: pyforkexec-waiter PID STOP_TIMEOUT_MS[:STOP_SIGNAL]|forward|forward-exit -- "
                "COMMAND [ARGS...]\n");
        return 2;
    }
    pid_t pid = (pid_t)pid_value;
    char **command = argv + 4;
    int count = argc - 4;

    /* The signals the daemon or launcher handles; already blocked by it, blocked again in case not.
     * Then not one this process ignores (its SIG_IGN kept across the exec: the launcher's caller
     * ignores it, and so does the child): blocked, the kernel would queue it here rather than discard
     * it, so it is unblocked again (one queued meanwhile is discarded then). */
    sigset_t handled, ignored;
    sigemptyset(&handled);
    sigemptyset(&ignored);
    int signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD};
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
        sigaddset(&handled, signals[i]);
    if (forward)
        sigaddset(&handled, SIGQUIT);
    if (sigprocmask(SIG_BLOCK, &handled, NULL) < 0)
        resume(command, count, "error", pid);
    for (int signo = 1; signo < NSIG; signo++) {
        struct sigaction now;
        if (sigismember(&handled, signo) == 1 && sigaction(signo, NULL, &now) == 0
            && now.sa_handler == SIG_IGN) {
            sigdelset(&handled, signo);
            sigaddset(&ignored, signo);
        }
    }
    if (sigprocmask(SIG_UNBLOCK, &ignored, NULL) < 0)
        resume(command, count, "error", pid);
    int sigfd = signalfd(-1, &handled, SFD_CLOEXEC);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);  /* a zombie's too: it then polls readable */
    if (sigfd < 0 || pidfd < 0)
        resume(command, count, "error", pid);

    const char *state = "run";
    /* Of a stop: when SIGKILL follows the stop signal, in ns. In ms, truncated, it came up to 1 ms
     * before the stop timeout had passed, whenever the poll woke during the stop (a signal passed on). */
    long long deadline = -1;
    for (;;) {
        struct pollfd fds[2] = {{.fd = pidfd, .events = POLLIN}, {.fd = sigfd, .events = POLLIN}};
        int timeout = -1;
        if (deadline >= 0) {
            long long left = deadline - now_ns();
            timeout = left > 0 ? (int)((left + 999999) / 1000000) : 0;  /* (rounded up: poll takes ms) */
        }
        int n = poll(fds, 2, timeout);
        if (n < 0 && errno != EINTR)
            resume(command, count, "error", pid);
        if (n > 0 && fds[0].revents)
            break;  /* exited: the daemon reaps it */
        if (deadline >= 0 && now_ns() >= deadline) {
            kill(-pid, SIGKILL);  /* its group: what it forked goes too */
            kill(pid, SIGKILL);
            state = "kill";
            deadline = -1;
        }
        if (n <= 0 || !fds[1].revents)
            continue;
        struct signalfd_siginfo info;
        if (read(sigfd, &info, sizeof(info)) != (ssize_t)sizeof(info))
            continue;
        int signo = (int)info.ssi_signo;
        if (forward) {
            if (signo != SIGCHLD)
                kill(pid, signo);
        } else if ((signo == SIGTERM || signo == SIGINT) && strcmp(state, "run") == 0) {
            kill(pid, stop_signal);
            kill(pid, SIGCONT);  /* a stopped service acts on it now (systemd's kill_and_sigcont) */
            state = "stop";
            deadline = now_ns() + timeout_ms * 1000000;
        } else if (signo == SIGHUP || signo == SIGUSR1 || signo == SIGUSR2) {
            kill(pid, signo);
        }
    }
    close(sigfd);
    close(pidfd);
    if (exit_here)
        exit_as(pid);
    resume(command, count, exit_here ? "error" : state, pid);
    return 127;
}
