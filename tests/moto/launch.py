"""moto's EC2 server (moto 5.2.5, from PyPI) with the gaps that would let a
vip-watchdog test pass wrongly patched. Usage: launch.py HOST PORT

Patched here (stock moto is lax in each):
1. AssociateAddress honours PrivateIpAddress. Stock moto reports every
   association on the ENI's primary private IP, so a reconciler comparing
   (ENI, private IP) never sees convergence, or sees it wrongly. Patched: the
   association keeps the requested private IP, DescribeAddresses reports it,
   and an address the ENI does not hold is refused (InvalidParameterValue),
   as EC2 does.
2. AssignPrivateIpAddresses honours AllowReassignment. Stock moto leaves the
   IP on both ENIs. Patched: with AllowReassignment the IP moves from the
   other ENI (an Elastic IP associated with it moves along, as in EC2);
   without it, an IP that another ENI holds is refused.

3. DescribeAddresses reports the instance of an ENI association. Stock
   moto answers InstanceId "" unless the association was made by instance
   ID; EC2 reports the instance the ENI is attached to. An EIP associated
   by instance ID is verified on InstanceId.
4. Routes, as EC2 documents them: CreateRoute and ReplaceRoute honour
   DryRun (stock moto applies the change); CreateRoute to an ENI for a
   destination that already has a route is refused (RouteAlreadyExists;
   stock moto silently overwrites); a route whose target ENI is gone or
   whose instance is terminated is State "blackhole" (stock moto says
   "active" always).
5. DescribeNetworkInterfaces' filter addresses.private-ip-address matches
   an ENI that holds any of the values among any of its private IPs, as EC2
   does. Stock moto compares the primary private IP only (and a list of
   values by subset/superset), so an ENI holding a VIP as a secondary
   private IP is never found: a private_ip VIP would look unassigned.

Not patched, and so never relied on by the tests: eventual consistency,
throttling and 5xx (covered by the fault-injecting proxy where tested), the
private-ip-address filter of DescribeAddresses.
"""

import sys

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.elastic_ip_addresses import ElasticAddress, ElasticAddressBackend
from moto.ec2.responses.elastic_ip_addresses import ElasticIPAddresses
from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces
from moto.server import main

ATTR = "_vip_watchdog_private_ip"


def _private_ip(self):
    if not self.eni:
        return None
    return getattr(self, ATTR, None) or self.eni.private_ip_address


ElasticAddress.private_ip_address = property(_private_ip)

_associate = ElasticIPAddresses.associate_address


def associate_address(self):
    private_ip = self._get_param("PrivateIpAddress")
    eni_id = self._get_param("NetworkInterfaceId")
    if private_ip and eni_id:
        eni = self.ec2_backend.get_network_interface(eni_id)
        held = [d["PrivateIpAddress"] for d in eni.private_ip_addresses]
        if private_ip not in held:
            raise EC2ClientError(
                "InvalidParameterValue",
                f"The private IP address {private_ip} is not assigned to {eni_id}.",
            )
    result = _associate(self)
    allocation_id = self._get_param("AllocationId")
    if allocation_id:
        eip = self.ec2_backend.address_by_allocation([allocation_id])[0]
        setattr(eip, ATTR, private_ip if eip.eni else None)
    return result


ElasticIPAddresses.associate_address = associate_address

_disassociate = ElasticAddressBackend.disassociate_address


def disassociate_address(self, address=None, association_id=None):
    eips = self.address_by_ip([address]) if address else self.address_by_association([association_id])
    _disassociate(self, address=address, association_id=association_id)
    for eip in eips:
        setattr(eip, ATTR, None)


ElasticAddressBackend.disassociate_address = disassociate_address

_assign = ElasticNetworkInterfaces.assign_private_ip_addresses


def assign_private_ip_addresses(self):
    eni_id = self._get_param("NetworkInterfaceId")
    target = self.ec2_backend.get_network_interface(eni_id)
    allow = self._get_bool_param("AllowReassignment", False)
    for ip in self._get_param("PrivateIpAddresses", []):
        for other in list(self.ec2_backend.enis.values()):
            if other.id == eni_id:
                continue
            held = [d for d in other.private_ip_addresses if d["PrivateIpAddress"] == ip]
            if not held:
                continue
            if held[0].get("Primary"):
                raise EC2ClientError("InvalidParameterValue", f"{ip} is the primary address of {other.id}.")
            if not allow:
                raise EC2ClientError(
                    "PrivateIpAddressInUse",
                    f"Address {ip} is in use by {other.id}; pass AllowReassignment to move it.",
                )
            other.private_ip_addresses.remove(held[0])
            for eip in self.ec2_backend.addresses:
                if eip.eni is other and getattr(eip, ATTR, None) == ip:
                    eip.eni = target
    return _assign(self)


ElasticNetworkInterfaces.assign_private_ip_addresses = assign_private_ip_addresses

# 3. The instance of an ENI association.
ElasticAddress.instance_id = property(
    lambda self: self.instance.id
    if self.instance
    else (self.eni.instance.id if self.eni is not None and self.eni.instance is not None else "")
)

# 4. Routes.
from moto.ec2.exceptions import RouteAlreadyExistsError  # noqa: E402
from moto.ec2.models.route_tables import Route, RouteBackend  # noqa: E402
from moto.ec2.responses.route_tables import RouteTables  # noqa: E402


def _route_state(self):
    backend = self.route_table.ec2_backend
    if self.interface is not None and self.interface.id not in backend.enis:
        return "blackhole"
    if self.instance is not None and self.instance._state.name == "terminated":
        return "blackhole"
    return "active"


Route.state = property(_route_state)


def _honour_dry_run(method):
    def wrapped(self):
        self.error_on_dryrun()
        return method(self)

    return wrapped


RouteTables.create_route = _honour_dry_run(RouteTables.create_route)
RouteTables.replace_route = _honour_dry_run(RouteTables.replace_route)

_create_route = RouteBackend.create_route


def create_route(self, route_table_id, destination_cidr_block, *args, **kwargs):
    if destination_cidr_block and kwargs.get("interface_id"):
        import ipaddress

        table = self.get_route_table(route_table_id)
        net = ipaddress.ip_network(destination_cidr_block, strict=False)
        for route in table._routes.values():
            if route.destination_cidr_block and ipaddress.ip_network(route.destination_cidr_block) == net:
                raise RouteAlreadyExistsError(destination_cidr_block)
    return _create_route(self, route_table_id, destination_cidr_block, *args, **kwargs)


RouteBackend.create_route = create_route

# 5. DescribeNetworkInterfaces by any private IP.
from moto.ec2.models.elastic_network_interfaces import NetworkInterfaceBackend  # noqa: E402

_get_all_enis = NetworkInterfaceBackend.get_all_network_interfaces
ANY_PRIVATE_IP = "addresses.private-ip-address"


def get_all_network_interfaces(self, eni_ids=None, filters=None):
    filters = dict(filters or {})
    wanted = filters.pop(ANY_PRIVATE_IP, None)
    enis = _get_all_enis(self, eni_ids, filters)
    if wanted is None:
        return enis
    wanted = set([wanted] if isinstance(wanted, str) else wanted)
    return [eni for eni in enis if wanted & {d["PrivateIpAddress"] for d in eni.private_ip_addresses}]


NetworkInterfaceBackend.get_all_network_interfaces = get_all_network_interfaces

# 6. CreateTags: EC2's limits on keys and values.
import re  # noqa: E402

from moto.ec2.models.tags import TagBackend  # noqa: E402

_create_tags = TagBackend.create_tags
TAG_CHARS = re.compile(r"^[\w\s+\-=.:/@]*$")


class InvalidTag(EC2ClientError):
    def __init__(self, what):
        super().__init__("InvalidParameterValue", what)


def create_tags(self, resource_ids, tags):
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or key.lower().startswith("aws:") or not TAG_CHARS.match(key):
            raise InvalidTag(f"Tag key {key!r} is not valid")
        if len(value or "") > 256 or not TAG_CHARS.match(value or ""):
            raise InvalidTag(f"Tag value {value!r} is not valid")
    return _create_tags(self, resource_ids, tags)


TagBackend.create_tags = create_tags

if __name__ == "__main__":
    host, port = sys.argv[1], sys.argv[2]
    main(["-H", host, "-p", port])
