"""multiregion: a serverless item API, active-active in several AWS regions, with a failover rehearsal."""

__version__ = "0.1.0"
