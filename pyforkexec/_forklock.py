"""FORK_LOCK, Go's syscall.ForkLock: held while fds made for a child exist in the parent with the
child's ends still open, and by every fork of this process (os.fork, clone(fn), multiprocessing: the
at-fork hooks). A child that another thread forks meanwhile and that does not exec would otherwise
keep a copy of those ends: the end whose EOF tells a spawn that its child exec'd, or a pipe that
run() reads to EOF, which would then wait for that other child's end.

Holders: a spawn from its first fd to the close of the child's ends (forkexec.start_spawn), run()
from its first pipe to the close of the child's ends (through the spawn's ``after_clone``), and
nsinfo.run_in_namespaces around its pipe and fork. Never held while waiting for a child. A fork made
with a fork of its own that runs no at-fork hook (a C extension calling fork(2)) still copies them,
as it copies every fd of subprocess's. Reentrant: a spawn's preparation may spawn (idmap's user
namespace), and a holder may fork (run_in_namespaces).
"""

import os
import threading

FORK_LOCK = threading.RLock()
os.register_at_fork(before=FORK_LOCK.acquire, after_in_parent=FORK_LOCK.release,
                    after_in_child=FORK_LOCK.release)
