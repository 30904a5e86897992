#!/bin/bash
# Fault campaign (tests/reliability/faults.py): I/O errors and crashes
# injected into backups, restores, snapshot deletes and consolidations,
# prune and gc, each followed by checks that nothing was lost.
#   tests/reliability/faults.sh [--quick | --faults N] [--seed S] [--ops a,b]
#                               [--pack-size S] [-v]
# VMBACK names the binary (default build/vmback).
exec python3 "$(dirname "$0")/faults.py" "$@"
