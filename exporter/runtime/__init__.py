"""What runs on a host: its profile (``host``), the one package/version table (``packages``) and the one
way to load and encode a variant (``runners``)."""
