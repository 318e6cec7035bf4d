"""Extra `workbench` subcommands: each module here defines COMMANDS = {name: (add_arguments, run)}.

workbench.cli imports every module of this package and adds its commands, so a new command is
one new file here and no edit of cli.py. Keep top-level imports light (numpy at most): every
invocation of `workbench` imports these modules to build its --help.

    # workbench/commands/bench.py
    def add_arguments(p):
        p.add_argument("plan")

    def run(args):
        '''Time a plan file (trtexec-like).'''
        ...
        return 0

    COMMANDS = {"bench": (add_arguments, run)}
"""
