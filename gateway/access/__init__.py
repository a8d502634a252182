"""Access by application (申请 / 授权): deadlines, applications, grants, usage."""
