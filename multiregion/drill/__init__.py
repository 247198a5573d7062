"""The measuring core of the failover drill: traffic, records, measures, budgets and reports.

A drill is a rehearsal of a regional failure under continuous load. While the drill's steps run (inject a
fault, wait for detection, reroute, restore), synthetic clients in several regions keep sending writes and
reads through the global name, each through its own caching DNS resolver, and every lookup and request is
recorded on one monotonic clock. Afterwards pure functions turn the records into measures (availability,
client-visible RTO, DNS-level RTO, RPO, conflicts, latency, replication lag), budgets turn measures into
pass/fail results, and the report is written as JSON, JUnit XML and one self-contained HTML page.

Modules, in the order data flows:

- `records`: the frozen records (`Resolution`, `Request`, `Event`, `TimelineStep`);
- `traffic`: `CachingResolver`, `SyntheticClient`, `ConflictWriter`, `DnsWatcher`, `Traffic`;
- `transport`: `SandboxTransport` (HTTP to the sandbox) and `HttpsTransport` (AWS);
- `measures`: records + events -> measures (pure);
- `budgets`: measures -> `BudgetResult`s;
- `report`: `DrillReport`, everything gathered, `to_dict()` for JSON;
- `junit`, `html`: the report as JUnit XML and as HTML with an SVG timeline.

The package uses only the standard library: everything it needs from AWS or the sandbox (DNS answers,
clocks, final table contents, replication lags) comes in as callables or plain data from the caller.
"""
