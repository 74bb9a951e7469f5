# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT

from __future__ import annotations


class ModuleDocFragment:
    # The isolation options shared by forkexec and service (module_utils/isolation.py ISOLATION_ARGSPEC).
    DOCUMENTATION = r"""
options:
  namespaces:
    description:
      - New namespaces for the process, created with C(clone3) (C(CLONE_NEW*) in C(SysProcAttr.cloneflags)).
      - An isolation option (or a value inside one) given as an empty string is refused, naming it, rather
        than read as not given (a template variable that came out empty must not drop an isolation).
      - V(mount) is a new mount namespace whose mounts are made private, V(pid) makes the command PID 1 of a
        new PID namespace, V(user) a new user namespace (see O(uid_map), O(gid_map), O(map_root_user)).
    type: list
    elements: str
    choices: [user, pid, net, mount, uts, ipc, cgroup, time]
    default: []
  cloneflags:
    description:
      - Raw clone flags, by name (V(CLONE_NEWNS) or V(newns)), added to those of O(namespaces).
      - Flags that would make the child share this process's memory, files or signal handlers are refused,
        with the reason.
    type: list
    elements: str
    default: []
  unshareflags:
    description:
      - Flags for the C(unshare) system call in the child after C(clone3), by name, as Go's C(Unshareflags).
    type: list
    elements: str
    default: []
  uid_map:
    description:
      - Lines of the new user namespace's C(uid_map). Needs a new user namespace.
      - "The maps alone do not change who the command runs as. It keeps the module's uid (root), which a map
        of other ids does not list, so inside the namespace it runs as the overflow uid (65534, C(nobody))
        without any capability. Set O(credential) to ids the maps list (V({uid: 0, gid: 0}) for root of
        the namespace), or map the module's own user with O(map_root_user)."
    type: list
    elements: dict
    suboptions: &idmap
      container_id:
        description: First id inside the namespace.
        type: int
        required: true
      host_id:
        description: First id outside the namespace.
        type: int
        required: true
      size:
        description: Number of ids mapped.
        type: int
        default: 1
  gid_map:
    description:
      - Lines of the new user namespace's C(gid_map), as O(uid_map).
    type: list
    elements: dict
    suboptions: *idmap
  map_root_user:
    description:
      - Map the user and group running the module to root of the new user namespace
        (C(unshare --map-root-user)).
      - Mutually exclusive with O(uid_map) and O(gid_map).
    type: bool
    default: false
  setgroups:
    description:
      - What the new user namespace's C(/proc/PID/setgroups) says before its C(gid_map) is written.
    type: str
    choices: [allow, deny]
    default: deny
  hostname:
    description:
      - Hostname of the new UTS namespace (needs V(uts) in O(namespaces)).
    type: str
  domainname:
    description:
      - NIS domain name of the new UTS namespace (needs V(uts) in O(namespaces)).
    type: str
  netns:
    description:
      - Join the named network namespace C(/run/netns/NAME), as made by M(pyforkexec.isolation.netns) or
        C(ip netns add).
      - Cannot be combined with V(net) in O(namespaces).
      - The namespace must exist when the task runs; a name whose file is not a network namespace any more
        (its mount went away) fails the task too.
    type: str
  join:
    description:
      - Existing namespaces to join with C(setns) before anything else, as C(nsenter) does.
      - Joining a PID namespace places the command itself in it (pyforkexec joins it before the command is
        born, as C(nsenter) forks after joining), not only its children as a bare C(setns) would.
      - Each entry must name namespaces that exist, else the task fails naming the entry (C(join[1].pid))
        before anything runs; it never runs the command in the host's namespaces instead. A process that
        exits between that check and the start fails the start the same way.
    type: list
    elements: dict
    default: []
    suboptions:
      pid:
        description:
          - Join the namespaces of this process; by default every one that differs from the module's own,
            except its PID namespace.
          - "The namespaces are pinned at converge time (as is a C(path) under C(/proc/PID/), however it is
            spelled, which the spec then names as C(/proc/PID/ns/TYPE)): by the process's start time, the
            kernel's namespace id where it has one (Linux 6.18) and the inode. A later start (a C(service)
            restarting) fails rather than join another process that got the same PID, even one whose new
            namespace got the freed inode number."
        type: int
      path:
        description:
          - A namespace file to join (C(/proc/PID/ns/net), C(/run/netns/NAME)).
          - "A name (C(/run/netns/NAME)) means the namespace it names when the command starts. A path through
            a process's C(/proc/PID/) directory (C(/proc/PID/ns/net), C(/proc/PID/task/TID/ns/net),
            C(/proc/PID/root/run/netns/NAME), C(/proc/PID/fd/N)) is pinned as O(join[].pid) is, to that
            process (that thread, for C(/proc/PID/task/TID/)) and its namespace."
        type: path
      namespaces:
        description:
          - Which namespaces of O(join[].pid) to join, or the type O(join[].path) must be.
          - A V(time) namespace cannot be joined (the kernel lets only a process that shares its memory
            with no other join one, and the command is started from a copy that does), so a join of
            one fails before anything runs, naming the entry.
        type: list
        elements: str
        choices: [user, pid, net, mount, uts, ipc, cgroup, time]
  credential:
    description:
      - The user, group and supplementary groups the command runs as (Go's C(Credential)).
    type: dict
    suboptions:
      uid:
        description: User name or id.
        type: raw
        required: true
      gid:
        description: Group name or id; by default the primary group of O(credential.uid).
        type: raw
      groups:
        description: Supplementary groups, names or ids (none by default, as in Go).
        type: list
        elements: raw
        default: []
      no_setgroups:
        description: Leave the supplementary groups alone (needed in a user namespace with O(setgroups=deny)).
        type: bool
        default: false
  capabilities:
    description:
      - The capabilities the command keeps, by name (V(CAP_NET_BIND_SERVICE) or V(net_bind_service)).
      - With a new V(user) namespace, O(mounts) and O(readonly_root) are refused while the command keeps
        V(CAP_SYS_ADMIN) (it could unmount or remount them there), unless it runs as a non-root uid inside
        with O(no_new_privs), or under a O(landlock) policy with O(landlock.paths).
    type: dict
    suboptions:
      keep:
        description: With O(capabilities.drop_all_others), the only capabilities left in every set.
        type: list
        elements: str
        default: []
      ambient:
        description: Capabilities raised as ambient after the credential change; each must be kept.
        type: list
        elements: str
        default: []
      drop:
        description: Without O(capabilities.drop_all_others), the capabilities removed from every set.
        type: list
        elements: str
        default: []
      drop_all_others:
        description: Drop every capability not in O(capabilities.keep).
        type: bool
        default: true
  no_new_privs:
    description:
      - Set C(PR_SET_NO_NEW_PRIVS), so that set-user-id binaries and file capabilities grant nothing.
    type: bool
    default: false
  seccomp:
    description:
      - A seccomp filter installed right before C(execve).
    type: dict
    suboptions:
      default_action:
        description: What a system call in neither list does.
        type: str
        choices: [allow, errno, kill_process, kill_thread, trap, log]
        default: allow
      allow:
        description: System calls allowed when the default action is not V(allow).
        type: list
        elements: str
        default: []
      deny:
        description: System calls that get O(seccomp.deny_action).
        type: list
        elements: str
        default: []
      deny_action:
        description: What a denied system call does.
        type: str
        choices: [allow, errno, kill_process, kill_thread, trap, log]
        default: errno
      errno:
        description: The error of the V(errno) action, a name or number.
        type: raw
        default: EPERM
  restrict_suid_sgid:
    description:
      - A seccomp filter (systemd's C(RestrictSUIDSGID=)) under which every system call that would make a
        file set-user-ID or set-group-ID fails with C(EPERM) (C(chmod), C(fchmod), C(fchmodat),
        C(fchmodat2); C(open), C(openat), C(creat), C(mknod), C(mknodat) creating with such a mode);
        C(openat2) and C(io_uring_setup), whose modes no filter can read, fail with C(ENOSYS), and system
        calls of another ABI (i386, x32) kill the command. Installed before O(seccomp), which cannot
        lift it; without C(CAP_SYS_ADMIN) it sets C(no_new_privs), as O(seccomp) does.
      - Unset, it is on whenever a O(mounts[].idmap) is given (what the command's root creates there is
        stored as host root's, set-id bits included); V(true) turns it on without one, V(false) off.
      - Keeping C(CAP_SETFCAP) in O(capabilities) with an idmapped mount in a user namespace of the
        command's own is refused unless it is V(false) (a file capability would be stored for host root).
    type: bool
  restrict_namespaces:
    description:
      - The types of namespace the command may still create or join (systemd's C(RestrictNamespaces=), what
        docker's and podman's default seccomp profiles do to a container without C(CAP_SYS_ADMIN)); V([])
        - none. Unset, no restriction. Without it, a command with no capability and O(no_new_privs) still
        makes a user namespace, and in it every other type, as their root.
      - A seccomp filter installed before O(seccomp), which cannot lift it, under which C(unshare) and
        C(clone) with another type, and C(setns) into another type or of any type (nstype 0, as
        C(nsenter) joins a file) fail with C(EPERM), and C(clone3), whose flags no filter can read, with
        C(ENOSYS) (glibc's C(posix_spawn) and threads then use C(clone), so C(fork), threads and
        subprocesses are unaffected). Without C(CAP_SYS_ADMIN) it sets C(no_new_privs), as O(seccomp)
        does. The namespaces of O(namespaces) and O(join) are made before it. Listing every type
        restricts nothing.
    type: list
    elements: str
    choices: [user, pid, net, mount, uts, ipc, cgroup, time]
  landlock:
    description:
      - A Landlock policy (C(landlock(7))), enforced by the kernel on the command and all its descendants
        from C(execve) on. It implies C(PR_SET_NO_NEW_PRIVS).
      - With any O(landlock.paths) rule, all file access is denied except what the rules allow beneath
        their paths; with any O(landlock.ports) rule, TCP C(bind) and C(connect) are denied except on the
        ports of the rules.
      - Rule paths are looked up on the host when the command starts, before its mounts exist, as this
        module sees them (not inside O(rootfs)). A bind mount carries the rule of its source; a
        filesystem the command mounts itself (a V(proc), a V(tmpfs)) is beneath no rule, so it is denied
        unless a rule is on V(/).
      - Kernels differ in what they enforce (Landlock ABI 1 on Linux 5.13, 2 on 5.19 and Debian 12's 6.1,
        3 on 6.2, 4 (ports) on 6.7, 5 on 6.10, 6 (scopes) on 6.12). RV(landlock) says what this host
        enforces.
    type: dict
    suboptions:
      paths:
        description:
          - Filesystem rules, each allowing O(landlock.paths[].access) beneath O(landlock.paths[].path).
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: An absolute path on the host (a directory, or a file for the rights of a file).
            type: path
            required: true
          access:
            description:
              - "Rights: V(read) (V(read_file) and V(read_dir)), V(write) (V(write_file), V(truncate) and
                the V(make_*) and V(remove_*) rights), V(execute), V(read_file), V(read_dir), V(write_file),
                V(truncate) (ABI 3), V(remove_dir), V(remove_file), V(make_char), V(make_dir),
                V(make_reg), V(make_sock), V(make_fifo), V(make_block), V(make_sym), V(refer) (ABI 2:
                renaming and linking across directories), V(ioctl_dev) (ABI 5)."
            type: list
            elements: str
            required: true
      ports:
        description:
          - TCP port rules (ABI 4), each allowing O(landlock.ports[].access) on O(landlock.ports[].port).
        type: list
        elements: dict
        default: []
        suboptions:
          port:
            description: A TCP port.
            type: int
            required: true
          access:
            description: V(bind) and/or V(connect).
            type: list
            elements: str
            required: true
      scopes:
        description:
          - What the command cannot reach outside its Landlock domain (ABI 6), V(abstract_unix_socket)
            (connect to abstract unix sockets made outside it), V(signal) (signal processes outside it).
        type: list
        elements: str
        default: []
      mode:
        description:
          - V(best_effort) enforces what this host's kernel can and reports the rest in RV(landlock.dropped),
            with a warning; V(strict) fails before anything starts, naming the first right the kernel cannot
            enforce.
        type: str
        choices: [best_effort, strict]
        default: best_effort
  rootfs:
    description:
      - A directory that becomes the command's root with C(pivot_root) (needs V(mount) in O(namespaces)).
      - It is bind-mounted onto itself first unless O(mounts) mounts something at V(/).
      - O(mounts) targets are then paths inside the new root.
    type: path
  readonly_root:
    description:
      - Make the new root (O(rootfs), or C(/) of the new mount namespace) read-only; its submounts keep
        their own flags.
    type: bool
    default: false
  mounts:
    description:
      - Mounts made in the new mount namespace, in order, before C(pivot_root).
      - Each type takes the sub-options documented for it, and refuses any other one given (naming it,
        before anything runs, in check mode too) rather than leave the mount weaker than asked.
    type: list
    elements: dict
    default: []
    suboptions:
      type:
        description:
          - V(bind) a host path, a fresh V(tmpfs) (nosuid, nodev), a V(proc) for the new PID namespace
            (nosuid, nodev, noexec), a V(sysfs) (nosuid, nodev, noexec, read-only unless
            O(mounts[].readonly) is V(false)), V(dev) (a minimal C(/dev) on a tmpfs), or any other
            filesystem with V(mount).
        type: str
        choices: [bind, tmpfs, proc, sysfs, dev, mount]
        default: bind
      source:
        description: The host path to bind (V(bind)), or the source of a V(mount); no other type has one.
        type: str
      target:
        description: Where to mount, inside the new root when O(rootfs) is set.
        type: str
        required: true
      readonly:
        description:
          - Read-only mount. Default V(true) for a V(sysfs), V(false) for every other type.
          - A V(dev) cannot be made read-only (its binds of device nodes are written through whatever the
            mount says), so only V(false) is taken for it.
        type: bool
      recursive:
        description:
          - Bind the submounts of O(mounts[].source) too. A V(bind) only, default V(true) for it.
        type: bool
      size:
        description: Size of a V(tmpfs), as tmpfs takes it (V(64m), V(10%)); a V(tmpfs) only.
        type: str
      mode:
        description: Octal mode of a V(tmpfs) root (V(1777)); a V(tmpfs) only.
        type: str
      fstype:
        description:
          - Filesystem type of a V(mount); a V(mount) only. A V(mount) needs one unless its
            O(mounts[].flags) make it a remount, a bind, a move or a change of propagation alone (a
            propagation type only, with or without V(rec)), which take none; with one, a propagation type
            in O(mounts[].flags) is applied to the new mount after it is made.
          - What the kind of C(mount(2)) call the flags make does not use (a bind's or a move's
            O(mounts[].fstype) or O(mounts[].options), a remount's O(mounts[].source), a propagation
            change's O(mounts[].source) or O(mounts[].options)) is refused rather than ignored.
        type: str
      flags:
        description:
          - C(MS_*) flags by name (V(nosuid), V(nodev), V(MS_NOEXEC)), added to those of the type.
          - Any flag for a V(mount). For a V(bind), V(tmpfs), V(proc) or V(sysfs), the flags of the mount
            itself (V(ro), V(nosuid), V(nodev), V(noexec), V(noatime), V(nodiratime), V(relatime),
            V(strictatime), V(nosymfollow)) and a propagation type (V(private), V(slave), V(shared),
            V(unbindable)); a bind is made first, then given them (recursively with
            O(mounts[].recursive)). A V(dev) takes none.
        type: list
        elements: str
        default: []
      options:
        description:
          - The filesystem's options string (C(mount -o)) of a V(mount), a V(tmpfs) (V(nr_inodes=1000),
            after O(mounts[].size) and O(mounts[].mode)) or a V(proc) (V(hidepid=2)). A V(bind), a
            V(sysfs) or a V(dev) takes none.
        type: str
      mkdir:
        description: Create a missing target first.
        type: bool
        default: true
      idmap:
        description:
          - Make a V(bind) mount idmapped (C(open_tree) and C(mount_setattr) with C(MOUNT_ATTR_IDMAP)).
          - "V(true) idmaps it to the command's own user namespace (needs V(user) in O(namespaces) and its
            maps): a file stored with uid N appears as the id the maps give host id N, so with a map
            0 -> 100000 host root's files appear as the command's root, and what its root creates is stored
            as uid 0."
          - "Set-user-ID and set-group-ID bits included, which no V(nosuid) of this mount keeps off the
            host: an idmapped mount turns on O(restrict_suid_sgid), so that the command cannot make a file
            set-user-ID or set-group-ID there (a set-user-ID root program for any host user who reaches
            it)."
          - The absolute path of a user namespace file (C(/proc/PID/ns/user)) idmaps it to that namespace.
          - The filesystem must support idmapped mounts (ext4, xfs, btrfs, tmpfs from Linux 6.3...);
            otherwise the command fails to start, naming the mount.
        type: raw
      optional:
        description:
          - Leave a V(bind) mount out when its source does not exist on the host when the command
            starts (as bubblewrap's C(--ro-bind-try)), so that one definition serves hosts that differ
            (C(/lib64) exists on x86_64, not on arm64). Only a bind under a new root (O(rootfs)) can be
            optional - without one, a bind left out would leave its target as the host has it; for the
            same reason its target must be on an empty V(tmpfs) of O(mounts) (mount one over C(/) first,
            as bubblewrap's root is), not in O(rootfs) itself nor under a bind, an overlay or a disk.
        type: bool
        default: false
  mount_propagation:
    description:
      - Propagation of every mount of the new mount namespace, set before O(mounts).
      - "V(shared) and V(unchanged) keep the namespace's copies of this host's shared mounts (systemd makes
        C(/) shared) peers of them, so a mount of O(mounts) made on one would be made on the host's too, and
        stay after the service: refused, naming the mount, unless a new user namespace owns the mount
        namespace (the kernel then makes the copies slaves) or a propagation change of O(mounts) cuts that
        mount off first (V(rprivate) at its target)."
    type: str
    choices: [private, slave, shared, unchanged]
    default: private
  cgroup:
    description:
      - A cgroup v2 directory with limits that the command starts in (C(clone3) with C(CLONE_INTO_CGROUP)),
        created if needed with the controllers the limits need, and removed when empty.
    type: dict
    suboptions:
      path:
        description: Path below the cgroup v2 root; each module documents its default.
        type: str
      memory_max:
        description: C(memory.max), in bytes, V(max), or a size such as V(256M).
        type: raw
      memory_swap_max:
        description: C(memory.swap.max), as O(cgroup.memory_max).
        type: raw
      cpu_max:
        description:
          - C(cpu.max), V(max), V(QUOTA PERIOD) in microseconds, or a percentage of one CPU (V(50%), at
            least V(1%)).
        type: str
      cpu_weight:
        description: C(cpu.weight), 1 to 10000.
        type: int
      pids_max:
        description: C(pids.max), a number or V(max).
        type: raw
      io_max:
        description: C(io.max) lines, V(MAJ:MIN rbps=N wbps=N riops=N wiops=N).
        type: list
        elements: str
  rlimits:
    description:
      - "Resource limits by name (V(nofile) or V(RLIMIT_NOFILE)); each value is one limit for both soft
        and hard, a V([soft, hard]) pair, or a dict with C(soft) and C(hard); V(unlimited) or V(-1) for
        no limit."
    type: dict
    default: {}
notes:
  - Invalid combinations of these options (for example O(hostname) without a new UTS namespace, O(uid_map)
    without a new user namespace) are refused before anything runs, by pyforkexec's own validation; the
    message starts with the option and states the rule.
"""
