"""Process specs: one process as a versioned JSON or YAML document, loaded into ProcAttr/SysProcAttr.

This is what ``pyforkexec exec --spec FILE`` runs (the ExecStart of a systemd unit for a namespaced
service) and what the Ansible collection writes. A document, version 1::

    {
      "version": 1,                      # required; the only version so far
      "argv": ["nginx", "-g", "daemon off;"],   # required, non-empty
      "argv0": "/usr/sbin/nginx",        # optional: the file executed; default argv[0], looked up
                                         #   in PATH (proc.env's, else the launcher's) if it has no "/"
      "proc": {                          # optional: ProcAttr without "sys"
        "dir": "/srv",                   #   working directory (default: the launcher's)
        "env": ["PATH=/usr/bin:/bin"],   #   "K=V" strings; absent or null: the launcher's environment
        "files": [0, 1, 2]               #   files[i] becomes fd i (null: closed); default [0, 1, 2]
      },
      "sys": {                           # optional: SysProcAttr, the field names of the Python API
        "cloneflags": ["newuser", "newuts", "newpid"],  # flags: an int, a "a|b" string or a list of names
        "uid_mappings": [{"container_id": 0, "host_id": 1000, "size": 1}],
        "gid_mappings": [[0, 1000, 1]],  #   a nested dataclass: an object, or a list of its fields
        "credential": {"uid": 0, "gid": 0},
        "pdeathsig": "SIGTERM"           #   a signal: a number or a name
      },
      "wait": true                       # optional: see below
    }

The ``proc`` and ``sys`` objects are not listed here field by field: they are derived from the
dataclasses of attrs.py (``dataclasses.fields`` and the type hints), so every field SysProcAttr
gains, with its nested dataclasses, is accepted without a change here. ``pyforkexec exec
--schema`` prints the resulting JSON Schema. The rules of the derivation:

- ``int``, ``str``, ``bool``: JSON numbers, strings, booleans (a boolean is not a number);
- ``Optional[X]``: ``null`` or X; ``Union[A, B]``: the first arm that the JSON value's type fits;
- ``Sequence[X]``: a list of X; a dataclass: an object of its fields (unknown keys are errors,
  missing required fields too) or a list of its fields in order;
- int fields holding flags or signals (``cloneflags``, ``unshareflags``, ``SetNS.nstype``,
  ``pdeathsig``, and any field whose ``dataclasses.field`` metadata has a ``"parse"`` callable)
  also take names; callables (``sync``) and file objects cannot come from a document, nor can an
  fd number where the API takes an fd of the caller (a join's ``target``, a mount's ``idmap``,
  ``cgroup_fd``, ``landlock_fd``, ``exec_fd``: ``spec.fds``), which would name an fd of the process
  reading the document.

Errors name the path of the value: ``spec: sys.cloneflagz: unknown field (did you mean
cloneflags?)``, ``spec: sys.uid_mappings[0].size: expected an integer, got "one"``. ``check()`` then
runs pyforkexec's own validation (the checks fork_exec makes before any process exists), its
messages rewritten to the same paths (``SysProcAttr.x`` becomes ``sys.x``).

Before any field is read, the whole document is checked for what no field can hold
(``check_document``): more than MAX_DEPTH levels of nesting, more than MAX_VALUES values (a YAML
alias used over and over), keys that are not strings, integers beyond 64 bits (an integer of
thousands of digits is kept by the parsers as an out-of-range value, not a parse failure), numbers
that are not finite, YAML values JSON has no type for (timestamps, sets, binary), strings or keys
holding half of a UTF-16 surrogate pair (a ``\\ud800`` escape: no text, and no byte of a non-UTF-8 file
name as ``spec.dump`` writes one, U+DC80 to U+DCFF, which stay). ``read`` takes at
most MAX_BYTES of UTF-8. Every failure of a document is a SpecError naming where it is.

``wait`` (default true) is how the launcher behaves: it stays the parent of the process, forwards
SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1 and SIGUSR2 to it, and exits as the process exits (its
status, or death by the same signal), which is what a service manager needs from an ExecStart
command (``Type=exec`` or ``simple``). With false it prints the pid and exits 0 once the process has
started (a detached process that the caller tracks itself).

``dump(argv0, argv, attr)`` is the inverse of ``load(doc) -> (argv0, argv, attr)``: fields at their
default are left out and flags are written as lists of names, so ``load(dump(...))`` gives equal
attributes and ``dump(*load(doc))`` is the normalized form of ``doc``.
"""

from .check import ProgramError, check, check_on_host, find_program, sees_as_here
from .document import MAX_BYTES, MAX_DEPTH, MAX_VALUES, SpecError, check_document, parse_text
from .dump import dump
from .load import TOP_FIELDS, VERSION, Spec, load, load_spec, loads, read
from .schema import schema

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_VALUES", "TOP_FIELDS", "VERSION", "ProgramError", "Spec",
           "SpecError", "check", "check_document", "check_on_host", "dump", "find_program", "load",
           "load_spec", "loads", "parse_text", "read", "schema", "sees_as_here"]
