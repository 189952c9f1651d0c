// GraphQL reads of the building model used by the tree, the search and the detail pane.

import { graphql } from "./api.js";

const NODE = "fragment Node on Entity { id label __typename types }";

/** Display order of kinds among siblings, outermost first. */
export const KIND_ORDER = ["Site", "Building", "Level", "Space", "Equipment", "Point", "OtherEntity"];

export function byKindThenLabel(a, b) {
  const k = KIND_ORDER.indexOf(a.__typename) - KIND_ORDER.indexOf(b.__typename);
  if (k !== 0) return k;
  return (a.label ?? a.id).localeCompare(b.label ?? b.id, undefined, { numeric: true });
}

export async function loadSites() {
  const data = await graphql(`{ sites(first: 1000) { nodes { ...Node } } } ${NODE}`);
  return data.sites.nodes.sort(byKindThenLabel);
}

/**
 * The tree children of an entity: its parts (buildings, levels, spaces, sub-equipment), the
 * equipment located in it and its points, once each, in display order.
 */
export async function loadChildren(id) {
  const data = await graphql(
    `query Children($id: ID!) { entity(id: $id) {
       hasPart { ...Node } isLocationOf { ...Node } hasPoint { ...Node } } } ${NODE}`,
    { id },
  );
  if (!data.entity) return [];
  const seen = new Map();
  for (const list of [data.entity.hasPart, data.entity.isLocationOf, data.entity.hasPoint]) {
    for (const node of list) if (!seen.has(node.id)) seen.set(node.id, node);
  }
  return [...seen.values()].sort(byKindThenLabel);
}

/** ``brick:VAV``, a full IRI, or a bare Brick class name (``VAV``). */
export function classArgument(text) {
  const trimmed = text.trim();
  if (!trimmed) return null;
  return trimmed.includes(":") ? trimmed : `brick:${trimmed}`;
}

export async function search({ text, cls, first = 50 }) {
  const where = text.trim() ? { labelContains: text.trim() } : null;
  const data = await graphql(
    `query Search($type: String, $where: EntityFilterInput, $first: Int!) {
       entities(type: $type, where: $where, first: $first) {
         nodes { ...Node } pageInfo { hasNextPage } } } ${NODE}`,
    { type: classArgument(cls), where, first },
  );
  return { nodes: data.entities.nodes, more: data.entities.pageInfo.hasNextPage };
}

export async function loadDetail(id) {
  const data = await graphql(
    `query Detail($id: ID!) { entity(id: $id) {
       ...Node classes tags
       externalReferences { kind timeseriesId }
       isPartOf { ...Node } hasPart { ...Node } hasLocation { ...Node } isLocationOf { ...Node }
       isPointOf { ...Node } hasPoint { ...Node } feeds { ...Node } isFedBy { ...Node }
       ... on Point { unit timeseriesUuid latest { time value } }
     } } ${NODE}`,
    { id },
  );
  return data.entity;
}
