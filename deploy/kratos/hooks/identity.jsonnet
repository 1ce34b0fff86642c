// Body of the identity-resolution web_hooks -> POST /hooks/kratos/identity?point=….
// The whole ctx.identity (Kratos leaves out credentials and metadata_admin): with its
// metadata_public in the payload, the hook needs no extra read of the Admin API and writes
// nothing at all when the platform ids are already there — the case on every login.
// At registration pre-persist ctx.identity.id is the nil UUID (not stored yet): the hook then
// resolves by the trait HOOKS_RESOLVE_TRAIT (e.g. email), which is why the traits go too.
function(ctx) { identity: ctx.identity }
