"""The mitogen_linear strategy of the installed mitogen package, under its usual name.

Ansible loads strategy plugins from directories; pointing `strategy_plugins` at this one avoids
hard-coding where pip put mitogen. Mitogen runs each host's tasks in one persistent Python
interpreter instead of starting Python per task, which matters most in a TCG-emulated guest.
"""

from __future__ import annotations

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

__all__ = ["StrategyModule"]
