#!/usr/bin/python
# Copyright: (c) 2025, pyforkexec developers
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
module: forkexec
short_description: Run one command in new or existing Linux namespaces
version_added: 0.1.0
description:
  - Runs one command on the managed host with pyforkexec (Go's C(syscall.ForkExec) for Python), in new
    namespaces (user, PID, network, mount, UTS, IPC, cgroup, time) or in existing ones, with id maps,
    credentials, capabilities, seccomp, mounts, a new root, cgroup limits and resource limits.
  - Like M(ansible.builtin.command), it is not run through a shell, reports V(changed=true) when it ran,
    and skips the run when O(creates) exists or O(removes) does not.
  - When the child fails before C(execve) (a refused C(setns), a program missing inside O(rootfs), a file
    C(execve) cannot run...), the task fails with RV(child_error) naming the step that failed. What the
    module can see on the host first (a program missing there, a working directory) fails the task
    before anything starts, naming the option, without RV(child_error).
author:
  - pyforkexec developers (@pyforkexec)
requirements:
  - Linux, and root or a user namespace for most isolation options
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pyforkexec.isolation.install
  - pyforkexec.isolation.isolation
options:
  argv:
    description:
      - The command and its arguments as a list. C(argv[0]) is looked up in C(PATH) unless it contains C(/).
      - Exactly one of O(argv) and O(cmd) is required.
    type: list
    elements: str
  cmd:
    description:
      - The command as one string, split like a shell would (no shell features).
    type: str
  chdir:
    description:
      - Working directory of the command, inside O(rootfs) when that is set.
    type: path
  env:
    description:
      - Environment variables added to (or, with O(inherit_env=false), making up) the command's environment.
    type: dict
    default: {}
  inherit_env:
    description:
      - Start from the module's environment. With V(false) the command gets only O(env).
    type: bool
    default: true
  stdin:
    description:
      - Data written to the command's standard input.
    type: str
  stdin_add_newline:
    description:
      - Append a newline to O(stdin).
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for the command; it is then killed and the task fails. V(0) waits forever.
    type: float
    default: 0
  creates:
    description:
      - A path; when it exists, the command is not run.
    type: path
  removes:
    description:
      - A path; when it does not exist, the command is not run.
    type: path
attributes:
  check_mode:
    support: partial
    details:
      - Check mode validates every option with pyforkexec, looks at what the start would find on this
        host first (the working directory, the program, bind sources), and reports what would run,
        without running it.
  diff_mode:
    support: none
  platform:
    platforms: linux
seealso:
  - module: ansible.builtin.command
  - module: pyforkexec.isolation.service
  - module: pyforkexec.isolation.netns
"""

EXAMPLES = r"""
- name: The hostname inside a new UTS namespace
  pyforkexec.isolation.forkexec:
    argv: [hostname]
    namespaces: [uts]
    hostname: sandbox
  register: result
  changed_when: false

- name: As root of a new user namespace, with its own PID and mount namespaces and /proc
  pyforkexec.isolation.forkexec:
    cmd: ps -o pid,user,comm
    namespaces: [user, pid, mount]
    map_root_user: true
    mounts:
      - type: proc
        target: /proc

- name: As root of a new user namespace that is the unprivileged uid 100000 outside
  pyforkexec.isolation.forkexec:
    argv: [id]
    namespaces: [user]
    uid_map: [{container_id: 0, host_id: 100000, size: 65536}]
    gid_map: [{container_id: 0, host_id: 100000, size: 65536}]
    credential: {uid: 0, gid: 0}  # without it, the command runs as the overflow uid (nobody)

- name: Inside a named network namespace made by pyforkexec.isolation.netns
  pyforkexec.isolation.forkexec:
    argv: [ip, -brief, address]
    netns: web

- name: A build step with limits, as nobody, without network
  pyforkexec.isolation.forkexec:
    argv: [make, -j2]
    chdir: /srv/src
    namespaces: [net]
    credential: {uid: nobody, gid: nogroup}
    cgroup: {memory_max: 512M, pids_max: 256}
    rlimits: {nofile: 1024}
    no_new_privs: true
    creates: /srv/src/build/done

- name: A converter that may read the system and its input, and write only its output (Landlock)
  pyforkexec.isolation.forkexec:
    argv: [/usr/bin/convert, /srv/in/photo.png, /srv/out/photo.jpg]
    landlock:
      paths:
        - {path: /usr, access: [read, execute]}
        - {path: /etc, access: [read]}
        - {path: /srv/in, access: [read]}
        - {path: /srv/out, access: [read, write]}
      mode: strict  # fail rather than run with a right this kernel cannot enforce
  register: converted

- name: A root-owned directory written as root of a user namespace, through an idmapped mount
  pyforkexec.isolation.forkexec:
    argv: [touch, /data/made-inside]  # stored on the host as uid 0
    namespaces: [user, mount]
    uid_map: [{container_id: 0, host_id: 100000, size: 65536}]
    gid_map: [{container_id: 0, host_id: 100000, size: 65536}]
    credential: {uid: 0, gid: 0}
    capabilities: {keep: []}  # else it could unmount /data (refused: mounts[0] would not hold)
    mounts: [{source: /srv/data, target: /data, idmap: true}]
"""

RETURN = r"""
rc:
  description:
    - Exit status of the command; the negated signal number when a signal killed it.
    - V(0) when O(creates) or O(removes) skipped it; null when the child failed before C(execve)
      (RV(child_error)) or O(timeout) killed it.
  returned: when the command ran, was skipped or its child failed
  type: int
  sample: 0
stdout:
  description: Standard output of the command (empty when O(creates) or O(removes) skipped it).
  returned: when the command ran or was skipped
  type: str
  sample: sandbox
stderr:
  description: Standard error of the command (empty when O(creates) or O(removes) skipped it).
  returned: when the command ran or was skipped
  type: str
  sample: ''
stdout_lines:
  description: RV(stdout) split into lines.
  returned: when the command ran or was skipped
  type: list
  elements: str
stderr_lines:
  description: RV(stderr) split into lines.
  returned: when the command ran or was skipped
  type: list
  elements: str
pid:
  description: The process id the command had (in the module's PID namespace).
  returned: when the command started
  type: int
  sample: 4242
cmd:
  description: The command as run (after splitting O(cmd)).
  returned: unless the task failed reading an option
  type: list
  elements: str
  sample: [hostname]
start:
  description: When the command started.
  returned: when the command ran
  type: str
  sample: '2025-01-01 12:00:00.000000'
end:
  description: When the command ended.
  returned: when the command ran
  type: str
  sample: '2025-01-01 12:00:00.010000'
delta:
  description: How long the command ran.
  returned: when the command ran
  type: str
  sample: '0:00:00.010000'
landlock:
  description:
    - What this host's kernel enforces of O(landlock). In best-effort mode the rights in RV(landlock.dropped)
      are not restricted (and a warning says so); in strict mode the task failed before anything started
      instead.
  returned: when O(landlock) is set
  type: dict
  contains:
    abi:
      description: The kernel's Landlock ABI version (0 - no Landlock).
      type: int
      sample: 2
    mode:
      description: O(landlock.mode).
      type: str
      sample: best_effort
    enforced:
      description: Whether the kernel enforces any of the policy.
      type: bool
      sample: true
    dropped:
      description: Each right the kernel cannot enforce, named as its option.
      type: list
      elements: str
      sample: ["landlock.ports[0].access: bind needs Landlock ABI 4, this kernel has 2"]
child_error:
  description:
    - The step at which the child failed before C(execve) (pyforkexec's C(ChildError)).
  returned: when the child failed before execve
  type: dict
  contains:
    errno:
      description: The error number.
      type: int
      sample: 1
    errno_name:
      description: Its symbolic name.
      type: str
      sample: EPERM
    location:
      description: The step that failed (C(setns), C(unshare), C(setgroups), C(chdir), C(execve)...).
      type: str
      sample: execve
    index:
      description: Which instance of the step, when it has several (the C(setns) entry, the fd...).
      type: int
      sample: 0
    filename:
      description: The program.
      type: str
      sample: /usr/bin/hostname
"""

from ansible_collections.pyforkexec.isolation.plugins.module_utils import deps, quick_exit
from ansible_collections.pyforkexec.isolation.plugins.module_utils import forkexec as fx
from ansible_collections.pyforkexec.isolation.plugins.module_utils.arguments import AnsibleModule


def main():
    quick_exit.skip_final_collection()
    module = AnsibleModule(argument_spec=fx.ARGSPEC, mutually_exclusive=fx.MUTUALLY_EXCLUSIVE,
                           required_one_of=fx.REQUIRED_ONE_OF, supports_check_mode=True)
    deps.require(module, "pyforkexec")
    try:
        module.exit_json(**fx.run(module.params, module.check_mode, module.warn))
    except fx.Failure as e:
        module.fail_json(msg=e.msg, **e.fields)


if __name__ == "__main__":
    main()
