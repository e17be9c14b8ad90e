import type { Viewer } from './token.js';

/** Anything owned by a user and optionally shared with a project's members. */
export interface Owned {
  ownerId: string;
  projectId: string | null;
}

/** The owner and the members of its project may see a resource; nobody else. */
export function canAccess(viewer: Viewer, resource: Owned): boolean {
  return resource.ownerId === viewer.id || (resource.projectId !== null && viewer.projects.includes(resource.projectId));
}

export function isProjectMember(viewer: Viewer, projectId: string): boolean {
  return viewer.projects.includes(projectId);
}

/** The role that may send to anyone, list who is online and revoke users. */
const ADMIN_ROLE = 'admin';

export function isAdmin(viewer: Viewer): boolean {
  return viewer.roles.includes(ADMIN_ROLE);
}
