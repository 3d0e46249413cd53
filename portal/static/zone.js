// The browser's time zone for the portal's pages, emails and receipts: read from the Intl API
// and sent as the "tz" cookie (first-party, loaded under the CSP's script-src 'self'). Without
// JavaScript nothing is sent and every time is shown in UTC, named as such.
(function () {
  "use strict";
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (e) {
    return;
  }
  // IANA names ("America/Argentina/Buenos_Aires") need no escaping in a cookie; anything else is not sent.
  if (!zone || zone.length > 64 || !/^[A-Za-z0-9_\/+-]+$/.test(zone)) {
    return;
  }
  var value = zone;
  if (document.cookie.split("; ").indexOf("tz=" + value) !== -1) {
    return;
  }
  var secure = location.protocol === "https:" ? "; secure" : "";
  document.cookie = "tz=" + value + "; path=/; max-age=31536000; samesite=lax" + secure;
  // A page reached straight from an email was drawn before the server knew the zone: draw its
  // times again, once (the server marks only pages fetched by GET, so no form is sent twice).
  var stored = document.cookie.split("; ").indexOf("tz=" + value) !== -1;
  if (stored && document.documentElement.hasAttribute("data-zone-unknown")) {
    location.reload();
  }
})();
