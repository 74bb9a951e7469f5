"""The sandbox extensions beyond Go's SysProcAttr: mounts, capabilities, cgroups, rlimits, seccomp
(with its syscall tables), and their checks (``extensions``). Each concept is a dataclass and its
validation; the child's steps for them are emitted by ``child.plan``."""
