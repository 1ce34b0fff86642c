// Body of the verification `after` web_hook -> POST /hooks/kratos/verification.
// The platform's existing output ({identity_id, email, display_name, first_name}); the hook
// also accepts the whole ctx.identity, so `function(ctx) { identity: ctx.identity }` works too.
// Missing traits render as '' rather than failing here: a Jsonnet error would fail the
// user's flow, while the hook answers 200 "skipped" (and counts it) for an incomplete body.
function(ctx)
  local traits = ctx.identity.traits;
  local text(obj, key) = if std.isObject(obj) && std.objectHas(obj, key) && std.isString(obj[key]) then obj[key] else '';
  local name = if std.objectHas(traits, 'name') then traits.name else {};
  local first = text(name, 'first');
  local last = text(name, 'last');
  {
    identity_id: ctx.identity.id,
    email: text(traits, 'email'),
    display_name: std.stripChars(first + ' ' + last, ' '),
    first_name: first,
  }
