/**
 * Deterministic sample smart-city data: citizens with Chinese names, valid 18-digit
 * resident ID numbers and mobile numbers; clinic visits; bus card taps.
 */
const SURNAMES = ['王', '李', '张', '刘', '陈', '杨', '黄', '赵', '吴', '周', '欧阳', '司马'];
const GIVEN = ['伟', '芳', '娜', '秀英', '敏', '静', '丽', '强', '磊', '军', '洋', '艳', '勇', '杰', '娟'];
const DISTRICTS = [
  { name: '东城', code: '110101', address: '北京市东城区东长安街' },
  { name: '海淀', code: '110108', address: '北京市海淀区中关村大街' },
  { name: '朝阳', code: '110105', address: '北京市朝阳区建国路' },
  { name: '浦东', code: '310115', address: '上海市浦东新区世纪大道' },
];
const CLINICS = ['市第一人民医院', '海淀医院', '朝阳社区卫生服务中心', '儿童医院'];
const DIAGNOSES = ['急性上呼吸道感染', '高血压 II 期', '2 型糖尿病', '腰椎间盘突出', '过敏性鼻炎'];
const ROUTES = ['1路', '52路', '特8路', '地铁4号线'];
const STOPS = ['天安门东', '中关村', '国贸', '陆家嘴', '西单'];

/** ISO 7064 MOD 11-2 check digit of a resident ID number. */
export function idCardCheckDigit(first17: string): string {
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = [...first17].reduce((acc, d, i) => acc + Number(d) * weights[i]!, 0);
  return '10X98765432'[sum % 11]!;
}

export interface Citizen {
  id: number;
  name: string;
  id_card: string;
  phone: string;
  birth_date: string;
  district: string;
  address: string;
}

export function citizens(count: number): Citizen[] {
  return Array.from({ length: count }, (_, i) => {
    const d = DISTRICTS[i % DISTRICTS.length]!;
    const year = 1950 + ((i * 7) % 55);
    const month = String(1 + (i % 12)).padStart(2, '0');
    const day = String(1 + ((i * 3) % 28)).padStart(2, '0');
    const seq = String(100 + i).padStart(3, '0');
    const first17 = `${d.code}${year}${month}${day}${seq}`;
    return {
      id: i + 1,
      name: SURNAMES[i % SURNAMES.length]! + GIVEN[(i * 5) % GIVEN.length]!,
      id_card: first17 + idCardCheckDigit(first17),
      phone: `13${(i % 9) + 1}${String(10_000_000 + i * 7919).slice(-8)}`,
      birth_date: `${year}-${month}-${day}`,
      district: d.name,
      address: `${d.address}${i + 1}号`,
    };
  });
}

export function clinicVisits(count: number, citizenCount: number) {
  return Array.from({ length: count }, (_, i) => ({
    id: 1000 + i,
    citizen_id: 1 + ((i * 3) % citizenCount),
    clinic: CLINICS[i % CLINICS.length]!,
    visited_at: `2026-11-${String(1 + (i % 24)).padStart(2, '0')} ${String(8 + (i % 10)).padStart(2, '0')}:${String((i * 7) % 60).padStart(2, '0')}:00.${String(i % 1000).padStart(3, '0')}`,
    diagnosis: DIAGNOSES[i % DIAGNOSES.length]!,
    fee: `${(i * 37) % 900 + 10}.${String((i * 13) % 100).padStart(2, '0')}`,
  }));
}

export function busTaps(count: number) {
  return Array.from({ length: count }, (_, i) => ({
    card_no: `BJ${String(880000000 + i * 17).padStart(10, '0')}`,
    route: ROUTES[i % ROUTES.length]!,
    stop_name: STOPS[i % STOPS.length]!,
    tapped_at: `2026-11-25 07:${String(i % 60).padStart(2, '0')}:${String((i * 11) % 60).padStart(2, '0')}.${String(i * 1000 % 1_000_000).padStart(6, '0')}`,
    fare: i % 4 === 3 ? '5.00' : '2.00',
  }));
}
