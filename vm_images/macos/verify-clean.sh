#!/bin/sh
# Fails (non-zero) unless this macOS guest is clean enough to stand for a user's new Mac.
# Run by Packer at the end of clean.pkr.hcl; safe to run by hand in any guest.
set -u
fail=0
check() { # check "what" command...
    what=$1; shift
    if "$@" >/dev/null 2>&1; then echo "ok    $what"; else echo "FAIL  $what"; fail=1; fi
}
check "arm64 kernel"                          test "$(uname -m)" = arm64
check "no Homebrew"                           sh -c '! command -v brew && test ! -e /opt/homebrew && test ! -e /usr/local/Homebrew'
check "no Command Line Tools"                 test ! -e /Library/Developer/CommandLineTools
check "no Xcode"                              sh -c '! ls -d /Applications/Xcode*.app'
check "xcode-select has no developer dir"     sh -c '! xcode-select -p'
check "no python.org / framework Python"      test ! -e /Library/Frameworks/Python.framework
check "no python3 outside the CLT stub"       sh -c '! command -v python3 || test "$(command -v python3)" = /usr/bin/python3'
check "no Rosetta 2"                          test ! -e /Library/Apple/usr/share/rosetta/rosetta
check "Remote Login on"                       sh -c 'sudo -n systemsetup -getremotelogin | grep -q On'
check "passwordless sudo for admin"           sudo -n true
exit $fail
