"""Signed outbound notifications (webhooks) and the log of their delivery attempts."""
