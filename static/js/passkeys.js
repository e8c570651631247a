// The Security page: once django-otp-webauthn's registration script
// (django_otp_webauthn/otp_webauthn_register.js) reports a new passkey, go where the server says:
// the page that names it. A file of its own because the CSP allows no inline script.
"use strict";

document.addEventListener("otp_webauthn.register_complete", (event) => {
  const answer = event.detail && event.detail.response;
  const target = answer && typeof answer.redirect_url === "string" ? answer.redirect_url : "";
  // Only a path on this site (the server sends one; never follow anything else).
  window.location.assign(target.startsWith("/") && !target.startsWith("//") ? target : window.location.href);
});
