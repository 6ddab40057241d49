package depot

// Role is a user's role in one cohort.
type Role string

// Cohort roles. A manager can do everything an uploader and a reader can, and
// delete files.
const (
	RoleUploader Role = "uploader"
	RoleReader   Role = "reader"
	RoleManager  Role = "manager"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleUploader || r == RoleReader || r == RoleManager }

// Permission is one kind of access to a cohort's files.
type Permission string

// Permissions checked per request.
const (
	PermUpload Permission = "upload"
	PermRead   Permission = "read" // download, stat
	PermList   Permission = "list"
	PermDelete Permission = "delete"
)

// Principal is an authenticated user with the grants in force at the time of
// authentication.
type Principal struct {
	User       string          `json:"user"`
	Admin      bool            `json:"admin"`
	AuthMethod string          `json:"auth_method"`
	Grants     map[string]Role `json:"grants"` // cohort → role
	// IdP and Subject name the person at their OpenID provider (issuer URL
	// and "sub" claim) when AuthMethod is AuthMethodOIDC; empty otherwise.
	IdP     string `json:"idp,omitempty"`
	Subject string `json:"sub,omitempty"`
}

// AuthMethodOIDC is the Principal.AuthMethod of a person signed in through
// an OpenID Connect provider (browser session or depot login).
const AuthMethodOIDC = "oidc"

// Can reports whether p may do perm in cohort. Admins may do everything.
func (p Principal) Can(cohort string, perm Permission) bool {
	if p.Admin {
		return true
	}
	role, ok := p.Grants[cohort]
	if !ok {
		return false
	}
	switch perm {
	case PermUpload:
		return role == RoleUploader || role == RoleManager
	case PermRead:
		return role == RoleReader || role == RoleManager
	case PermList:
		return true // every role may see the cohort's listing
	case PermDelete:
		return role == RoleManager
	}
	return false
}
