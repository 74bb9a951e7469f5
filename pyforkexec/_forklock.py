"""FORK_LOCK, Go's syscall.ForkLock: held while fds made for a child exist in the parent with the
child's ends still open, and by every fork of this process (os.fork, clone(fn), multiprocessing: the
at-fork hooks). A child that another thread forks meanwhile and that does not exec would otherwise
keep a copy of those ends: the end whose EOF tells a spawn that its child exec'd, or a pipe that
run() reads to EOF, which would then wait for that other child's end.

Holders: a spawn from its first fd to the close of the child's ends (forkexec.start_spawn), and run()
from its first pipe to the close of the child's ends (through the spawn's ``after_clone``). Never held
while waiting for a child, nor across os.fork() or clone(fn): their at-fork hooks run in reverse order
of registration, so another thread's fork may hold a later hook's lock (concurrent.futures' shutdown
lock) while it waits for this one, and a fork under this one would wait for that lock (the
library forks no Python child: it reads other namespaces from threads, nsinfo). A fork made with a fork of
its own that runs no at-fork hook (a C extension calling fork(2)) still copies them, as it copies
every fd of subprocess's. Reentrant: a spawn's preparation may spawn (idmap's user namespace).
"""

import os
import threading

FORK_LOCK = threading.RLock()
os.register_at_fork(before=FORK_LOCK.acquire, after_in_parent=FORK_LOCK.release,
                    after_in_child=FORK_LOCK.release)
