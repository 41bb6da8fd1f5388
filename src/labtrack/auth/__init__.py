"""Identity and access control: who is calling (identity sources) and what they may do.

See docs/auth.md for the user-facing description and every setting.
"""
