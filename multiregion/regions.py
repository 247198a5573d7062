"""Facts about AWS regions that both the tool and the sandbox need.

`location` is the approximate position of the region's data centres (latitude, longitude); the sandbox
measures latency-routing nearness as the great-circle distance between locations. `client_subnet` is a
representative client network in that region: an EDNS0 client subnet inside it stands for a client there.
`apigw_zone_id` is API Gateway's regional hosted zone id (AWS General Reference, API Gateway endpoints).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    location: tuple[float, float]
    client_subnet: str
    apigw_zone_id: str | None


REGIONS: dict[str, Region] = {
    r.code: r
    for r in (
        Region("us-east-1", "US East (N. Virginia)", (38.95, -77.45), "3.208.0.0/12", "Z1UJRXOUMOOFQ8"),
        Region("us-east-2", "US East (Ohio)", (39.96, -83.00), "3.128.0.0/15", "ZOJJZC49E0EPZ"),
        Region("us-west-1", "US West (N. California)", (37.35, -121.96), "13.52.0.0/16", "Z2MUQ32089INYE"),
        Region("us-west-2", "US West (Oregon)", (45.84, -119.70), "34.208.0.0/12", "Z2OJLYMUO9EFXC"),
        Region("ca-central-1", "Canada (Central)", (45.50, -73.57), "15.222.0.0/15", "Z19DQILCV0OWEC"),
        Region("sa-east-1", "South America (Sao Paulo)", (-23.55, -46.63), "18.228.0.0/16", "ZCMLWB8V5SYIT"),
        Region("eu-west-1", "Europe (Ireland)", (53.35, -6.26), "34.240.0.0/13", "ZLY8HYME6SFDD"),
        Region("eu-west-2", "Europe (London)", (51.51, -0.13), "35.176.0.0/15", "ZJ5UAJN8Y3Z2Q"),
        Region("eu-west-3", "Europe (Paris)", (48.86, 2.35), "35.180.0.0/16", "Z3KY65QIEKYHQQ"),
        Region("eu-central-1", "Europe (Frankfurt)", (50.11, 8.68), "3.120.0.0/14", "Z1U9ULNL0V5AJ3"),
        Region("eu-north-1", "Europe (Stockholm)", (59.33, 18.07), "13.48.0.0/15", "Z3UWIKFBOOGXPP"),
        Region("ap-south-1", "Asia Pacific (Mumbai)", (19.08, 72.88), "13.232.0.0/14", "Z3VO1THU9YC4UR"),
        Region("ap-northeast-1", "Asia Pacific (Tokyo)", (35.68, 139.69), "13.112.0.0/14", "Z1YSHQZHG15GKL"),
        Region("ap-northeast-2", "Asia Pacific (Seoul)", (37.57, 126.98), "13.124.0.0/16", "Z20JF4UZKIW1U8"),
        Region("ap-northeast-3", "Asia Pacific (Osaka)", (34.69, 135.50), "13.208.0.0/16", "Z2YQB5RD63NC85"),
        Region("ap-southeast-1", "Asia Pacific (Singapore)", (1.35, 103.82), "13.228.0.0/15", "ZL327KTPIQFUL"),
        Region("ap-southeast-2", "Asia Pacific (Sydney)", (-33.87, 151.21), "13.236.0.0/14", "Z2RPCDW04V8134"),
    )
}


# DynamoDB multi-Region strong consistency (MRSC) keeps a global table's three members (replicas and witness)
# inside one of these Region sets (DynamoDB API reference, CreateGlobalTableWitnessGroupMemberAction: "US
# Region set: US East (N. Virginia), US East (Ohio), US West (Oregon); EU Region set: Europe (Ireland), Europe
# (London), Europe (Paris), Europe (Frankfurt); AP Region set: Asia Pacific (Tokyo), Asia Pacific (Seoul), Asia
# Pacific (Osaka)"). The config's validation and the sandbox both read this one table.
STRONG_REGION_SETS: dict[str, tuple[str, ...]] = {
    "US": ("us-east-1", "us-east-2", "us-west-2"),
    "EU": ("eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1"),
    "AP": ("ap-northeast-1", "ap-northeast-2", "ap-northeast-3"),
}


def strong_region_set(region: str) -> str | None:
    """The MRSC Region set a region belongs to, or None when strong consistency is not offered there."""
    return next((name for name, regions in STRONG_REGION_SETS.items() if region in regions), None)


def distance_km(a: str, b: str) -> float:
    """Great-circle distance between two regions' locations."""
    (lat1, lon1), (lat2, lon2) = REGIONS[a].location, REGIONS[b].location
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def region_of_ip(ip: str) -> str | None:
    """The region whose client subnet holds this address, if any."""
    addr = ipaddress.ip_address(ip)
    for region in REGIONS.values():
        if addr in ipaddress.ip_network(region.client_subnet):
            return region.code
    return None


def client_ip(region: str) -> str:
    """A client address inside the region's client subnet (the network address plus one)."""
    return str(ipaddress.ip_network(REGIONS[region].client_subnet).network_address + 1)
