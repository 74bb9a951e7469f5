"""The collection's unit tests import ``ansible_collections.pyforkexec.isolation``, which only exists
where ansible-test puts the collection (stage ``ansible`` of scripts/test, see
scripts/lib/ansible_test.sh); the repository's own pytest run leaves them to that stage."""

import os

_IN_COLLECTION = f"{os.sep}ansible_collections{os.sep}pyforkexec{os.sep}isolation{os.sep}" in __file__
collect_ignore_glob = [] if _IN_COLLECTION else ["*"]
