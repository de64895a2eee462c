"""The bodies of trtbuild's commands. Their command-line declarations are in ``trtbuild.cliapp``; each body
imports its heavy machinery lazily so that `trtbuild plan` stays light."""
