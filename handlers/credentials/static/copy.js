// The one piece of the token page that needs JavaScript: copying the new secret. Without it
// the button stays hidden and the secret is selected and copied by hand.
document.querySelectorAll("[data-copy]").forEach(function (button) {
  var field = document.getElementById(button.getAttribute("data-copy"));
  var status = document.querySelector("[data-copied]");
  button.hidden = false;
  button.addEventListener("click", function () {
    field.select();
    var done = function () { if (status) { status.textContent = "Copied to the clipboard."; } };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });
});
