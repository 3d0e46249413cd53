// Passkeys and security keys (WebAuthn) for the staff console: registering one on the security
// page and using one at sign-in. The server makes the options and checks the answers (py_webauthn);
// this file only carries them between the page and the browser's authenticator.
(function () {
  "use strict";

  function toBytes(value) {
    var text = atob(value.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((value.length + 3) % 4));
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer), text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: body === undefined ? "{}" : JSON.stringify(body)
    });
  }

  function showError(message) {
    var box = document.getElementById("passkey-error");
    if (box) { box.textContent = message; box.hidden = false; }
  }

  function finish(response) {
    return response.json().then(function (answer) {
      if (response.ok && answer.redirect) { window.location.assign(answer.redirect); }
      else { showError(answer.error || response.statusText); }
    });
  }

  function register(button) {
    var csrf = button.dataset.csrf;
    post(button.dataset.options, csrf).then(function (r) { return r.json(); }).then(function (options) {
      options.challenge = toBytes(options.challenge);
      options.user.id = toBytes(options.user.id);
      (options.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
      return navigator.credentials.create({publicKey: options});
    }).then(function (credential) {
      var name = document.getElementById("passkey-name");
      return post(button.dataset.finish, csrf, {
        id: credential.id, rawId: toText(credential.rawId), type: credential.type,
        name: name ? name.value : "",
        response: {
          clientDataJSON: toText(credential.response.clientDataJSON),
          attestationObject: toText(credential.response.attestationObject),
          transports: credential.response.getTransports ? credential.response.getTransports() : []
        },
        clientExtensionResults: credential.getClientExtensionResults()
      });
    }).then(finish).catch(function (error) { showError(String(error)); });
  }

  function signIn(button) {
    var csrf = button.dataset.csrf;
    post(button.dataset.options, csrf).then(function (r) { return r.json(); }).then(function (options) {
      options.challenge = toBytes(options.challenge);
      (options.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
      return navigator.credentials.get({publicKey: options});
    }).then(function (credential) {
      var r = credential.response;
      return post(button.dataset.finish, csrf, {
        id: credential.id, rawId: toText(credential.rawId), type: credential.type,
        response: {
          clientDataJSON: toText(r.clientDataJSON), authenticatorData: toText(r.authenticatorData),
          signature: toText(r.signature), userHandle: r.userHandle ? toText(r.userHandle) : null
        },
        clientExtensionResults: credential.getClientExtensionResults()
      });
    }).then(finish).catch(function (error) { showError(String(error)); });
  }

  var add = document.getElementById("passkey-register");
  if (add) add.addEventListener("click", function () { register(add); });
  var use = document.getElementById("passkey-signin");
  if (use) use.addEventListener("click", function () { signIn(use); });
})();
