// Test fixtures draw from the same seeded generators as the server.
export { randomNormal, seededRandom } from '../../server/src/random';
