/** The product types the simulator knows; add a new one here after copying composite-coupon.ts. */
import { MmadError, ErrorCode } from '../../base/errors.js';
import { batteryLid } from './battery-lid.js';
import { compositeCoupon } from './composite-coupon.js';
import type { ProductType } from './product-type.js';

export const PRODUCTS: readonly ProductType[] = [batteryLid, compositeCoupon];

export function productByName(name: string): ProductType {
  const p = PRODUCTS.find((x) => x.name === name);
  if (p === undefined) {
    throw new MmadError(ErrorCode.USAGE, `unknown product type '${name}': expected one of ${PRODUCTS.map((x) => x.name).join(', ')}`);
  }
  return p;
}

export { visibilityOf, type ProductType } from './product-type.js';
