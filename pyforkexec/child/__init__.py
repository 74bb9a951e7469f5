"""The child between clone and execve: the plan (``plan.compile_plan``, every step in Go's order), the
typed step builder (``steps.Builder``), the namespaces it joins (``joins``), and the C that runs the
steps (``_child.c``). Nothing here is imported until a process is spawned."""
