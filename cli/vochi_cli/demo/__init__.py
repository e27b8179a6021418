"""What ``vochi-crm demo`` runs, behind its Typer entry (:mod:`vochi_cli.commands.demo`).

- :mod:`~vochi_cli.demo.session`: the orchestration, from the first child process to the last
  one stopped;
- :mod:`~vochi_cli.demo.processes`: the child processes (simulator, daemon), their ports and logs;
- :mod:`~vochi_cli.demo.player`: playing the generated calls into the daemon;
- :mod:`~vochi_cli.demo.monitor`: the daemon's ``/stats``, polled;
- :mod:`~vochi_cli.demo.view`: the live Rich display;
- :mod:`~vochi_cli.demo.clock`: waiting on the stop event, the wall clock.

The command imports this package only when it runs, so ``vochi-crm --help`` pays nothing for it.
Its modules import httpx, Rich and the core inside the functions that use them: importing the
package imports nothing heavy.
"""
