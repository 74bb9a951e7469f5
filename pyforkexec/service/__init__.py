"""Running a service: the daemon behind ``manager: direct`` (``daemon``) and staying the parent of a
launched command (``supervise``: signals forwarded, exit status passed on)."""
