#include "server/bootstrap.hpp"

#include "core/fs.hpp"
#include "server/api/context.hpp"

namespace openstation::server {

core::Result<std::optional<InitialAdmin>> bootstrap_admin(store::Store& store,
                                                          const std::filesystem::path& data_dir,
                                                          const auth::PasswordHashLimits& limits) {
  store::UserFilter admins;
  admins.role = store::Role::admin;
  auto existing = store.users().list(admins, store::PageRequest{1, {}});
  if (!existing) return existing.error();
  if (!existing->items.empty()) return std::optional<InitialAdmin>{};

  InitialAdmin out;
  out.password = auth::generate_password();
  out.password_file = data_dir / kInitialAdminPasswordFile;
  auto hash = auth::hash_password(out.password, limits);
  if (!hash) return hash.error();

  auto r = store.transaction([&](store::Store& tx) -> core::Result<void> {
    // Checked again inside the transaction: two processes starting on one database at once must
    // not both create an admin.
    auto again = tx.users().list(admins, store::PageRequest{1, {}});
    if (!again) return again.error();
    if (!again->items.empty()) return core::Error{core::Errc::conflict, "bootstrap.raced", ""};
    if (auto taken = tx.users().get_by_name(kInitialAdminName); taken) {
      return core::Error{core::Errc::conflict, "bootstrap.admin_name_taken",
                         "There is no admin, but a user called 'admin' exists with the role "
                         "'user'; make it an admin in the database or remove it, then start "
                         "again."};
    } else if (taken.error().code != "store.not_found") {
      return taken.error();
    }
    store::User u;
    u.username = kInitialAdminName;
    u.display_name = "Administrator";
    u.role = store::Role::admin;
    u.password_hash = *hash;
    u.must_change_password = true;
    auto created = tx.users().create(std::move(u));
    if (!created) return created.error();
    out.user = *created;
    if (auto a = ApiContext::audit_in(
            tx, "system", "user.create", "user", out.user.id,
            {{"username", out.user.username}, {"role", "admin"}, {"bootstrap", true}});
        !a) {
      return a.error();
    }
    // Last, so a failure to write it rolls the user back and the next start tries again.
    if (auto w = core::write_file_atomic(out.password_file, out.password + "\n", 0600); !w) {
      return core::io_error("bootstrap.write_failed",
                            "Could not write the first admin's password to " +
                                out.password_file.string() + ": " + w.error().message +
                                ". Check that the data directory is writable.",
                            out.password_file.string());
    }
    return {};
  });
  if (!r) {
    if (r.error().code == "bootstrap.raced") return std::optional<InitialAdmin>{};
    return r.error();
  }
  return std::optional<InitialAdmin>{std::move(out)};
}

}  // namespace openstation::server
