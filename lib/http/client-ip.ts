import ipaddr from "ipaddr.js";

/**
 * The client's IP as the abuse limits key it, or null when the request did not come through
 * Vercel's edge.
 *
 * Only `x-real-ip` is read: Vercel's edge sets it (to the same address as `x-forwarded-for`,
 * which it overwrites so a client cannot spoof it), and `npm run dev` sets it from the socket the
 * same way. Any other header (`forwarded`, a client-sent `x-forwarded-for` chain, `cf-connecting-ip`)
 * is client-controlled here and ignored.
 *
 * IPv6 addresses are keyed by their /64: one subscriber usually holds a whole /64, so per-address
 * limits would be no limit at all.
 */
export function clientIp(request: Request): string | null {
  const raw = request.headers.get("x-real-ip")?.trim();
  if (!raw || !ipaddr.isValid(raw)) return null;
  const address = ipaddr.process(raw); // an IPv4-mapped IPv6 address becomes plain IPv4
  if (address.kind() === "ipv4") return address.toString();
  const parts = (address as ipaddr.IPv6).parts.slice(0, 4);
  return `${parts.map((p) => p.toString(16)).join(":")}::/64`;
}
