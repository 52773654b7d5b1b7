"""The checks' logic: what each portability check looks at in the guest and how it judges it.

Test modules call these; nothing here imports pytest, so every judgement is unit-testable.
"""
