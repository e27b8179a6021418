"""The vochi-crm support console (Textual)."""
